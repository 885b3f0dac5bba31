//! Instruction-count driver: `cargo run --release --example tokinstr -- TOKENIZER.json CORPUS.jsonl MB WARM`.
//! Loads the tokenizer and `MB` MB of documents, encodes them once cold and `WARM` more times,
//! and prints the id count; run under `valgrind --tool=cachegrind` with WARM 0 and 1, the
//! difference is one warm pass.

use phicorpus::tokenize::Tokenizer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tok = Tokenizer::from_file(&args[1]).expect("tokenizer");
    let mb: f64 = args.get(3).map_or(5.0, |s| s.parse().unwrap());
    let warm: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    let mut docs: Vec<String> = Vec::new();
    let mut total = 0usize;
    for line in std::fs::read_to_string(&args[2]).expect("corpus").lines() {
        let d: String = serde_json::from_str(line).expect("json line");
        total += d.len();
        if total as f64 > mb * 1e6 {
            break;
        }
        docs.push(d);
    }
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
