//! What the encoder examples share: the tokenizer and the first `MB` MB of a JSONL corpus of
//! strings (one document per line), from the command line `TOKENIZER.json CORPUS.jsonl MB`.

use phicorpus::tokenize::Tokenizer;

/// The tokenizer at `args[1]` and the documents of `args[2]` up to `args[3]` MB (`default_mb`).
pub fn load(args: &[String], default_mb: f64) -> (Tokenizer, Vec<String>) {
    let tok = Tokenizer::from_file(&args[1]).expect("tokenizer");
    let mb: f64 = args.get(3).map_or(default_mb, |s| s.parse().unwrap());
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
    (tok, docs)
}
