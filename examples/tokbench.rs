//! Throughput of the encoder alone: `cargo run --release --example tokbench -- TOKENIZER.json CORPUS.jsonl MB [ROUNDS]`.
//! Prints cold and warm MB/s of `encode_batch` on one thread, and of the pre-tokenizer alone.

use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tok, docs) = common::load(&args, 10.0);
    let rounds: usize = args.get(4).map_or(3, |s| s.parse().unwrap());
    let strs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let size = strs.iter().map(|s| s.len()).sum::<usize>() as f64 / 1e6;
    let run = |label: &str| {
        let t = Instant::now();
        let mut n = 0usize;
        let mut out = Vec::new();
        for s in &strs {
            out.clear();
            tok.encode_into(s, false, &mut out);
            n += out.len();
        }
        let dt = t.elapsed().as_secs_f64();
        println!("{label}: {:.1} MB/s ({n} ids)", size / dt);
    };
    run("cold");
    for _ in 0..rounds {
        run("warm");
    }
    for _ in 0..rounds {
        let t = Instant::now();
        let n: usize = strs.iter().map(|s| tok.count_pieces(s)).sum();
        println!(
            "split only: {:.1} MB/s ({n} pieces)",
            size / t.elapsed().as_secs_f64()
        );
    }
}
