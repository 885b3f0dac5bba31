//! GPT-2's byte ↔ printable-char mapping (`bytes_to_unicode`): every byte gets a visible char so
//! byte-level tokens can be stored as strings in `tokenizer.json`.

/// Is `b` one of the bytes GPT-2 maps to the char of the same code point?
const fn is_printable(b: u32) -> bool {
    (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
}

const fn build_byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0u32;
    while b < 256 {
        table[b as usize] = if is_printable(b) {
            match char::from_u32(b) {
                Some(c) => c,
                None => '\0',
            }
        } else {
            let c = match char::from_u32(256 + n) {
                Some(c) => c,
                None => '\0',
            };
            n += 1;
            c
        };
        b += 1;
    }
    table
}

/// `BYTE_TO_CHAR[b]` is the char GPT-2 uses for byte `b`.
pub const BYTE_TO_CHAR: [char; 256] = build_byte_to_char();

/// The byte a byte-level char stands for, or `None` for chars outside the mapping.
#[inline]
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 && is_printable(u) {
        return Some(u as u8);
    }
    // The 68 non-printable bytes map, in increasing order, to U+0100..U+0143.
    if (256..256 + 68).contains(&u) {
        let mut n = 256;
        for b in 0..256u32 {
            if !is_printable(b) {
                if n == u {
                    return Some(b as u8);
                }
                n += 1;
            }
        }
    }
    None
}

/// The bytes a byte-level token string stands for, or `None` if a char is outside the mapping.
pub fn token_to_bytes(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = BYTE_TO_CHAR[b as usize];
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        assert_eq!(char_to_byte('中'), None);
        assert_eq!(token_to_bytes("Ġhello").unwrap(), b" hello");
    }
}
