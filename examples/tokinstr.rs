//! Instruction-count driver: `cargo run --release --example tokinstr -- TOKENIZER.json CORPUS.jsonl MB WARM`.
//! Loads the tokenizer and `MB` MB of documents, encodes them once cold and `WARM` more times,
//! and prints the id count; run under `valgrind --tool=cachegrind` with WARM 0 and 1, the
//! difference is one warm pass.

#[path = "common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tok, docs) = common::load(&args, 5.0);
    let warm: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    let mut out = Vec::new();
    let mut n = 0usize;
    for _ in 0..=warm {
        n = 0;
        for s in &docs {
            out.clear();
            tok.encode_into(s, false, &mut out);
            n += out.len();
        }
    }
    println!("{n} ids");
}
