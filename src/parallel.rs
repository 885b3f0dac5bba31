//! Thread pools for batch calls: `None` runs on rayon's global pool (all cores), `Some(n)` on a
//! cached pool of exactly `n` threads, so callers and benchmarks can pin the thread count.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

fn pool(threads: usize) -> &'static ThreadPool {
    static POOLS: OnceLock<Mutex<HashMap<usize, &'static ThreadPool>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    pools.entry(threads).or_insert_with(|| {
        let pool = ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("phicorpus-{i}"))
            .build()
            .expect("failed to start a thread pool");
        Box::leak(Box::new(pool))
    })
}

/// Run `f` (which may use rayon's parallel iterators) with `threads` worker threads.
pub fn install<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    match threads {
        None | Some(0) => f(),
        Some(n) => pool(n).install(f),
    }
}

/// Split `texts` into consecutive index ranges of at most `max_docs` documents and at most
/// `max_bytes` bytes (a range always holds at least one document), covering every index once.
pub fn text_chunks(texts: &[&str], max_docs: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, text) in texts.iter().enumerate() {
        if i > start && (i - start >= max_docs.max(1) || bytes + text.len() > max_bytes) {
            ranges.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += text.len();
    }
    if start < texts.len() {
        ranges.push(start..texts.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_bound_docs_and_bytes() {
        assert!(text_chunks(&[], 4, 10).is_empty());
        let texts = ["aaaa", "bb", "cccccccccccc", "d", "e", "f", "g", "h"];
        let ranges = text_chunks(&texts, 3, 6);
        assert_eq!(ranges, vec![0..2, 2..3, 3..6, 6..8]);
        // Every index exactly once, in order.
        let flat: Vec<usize> = ranges.into_iter().flatten().collect();
        assert_eq!(flat, (0..texts.len()).collect::<Vec<_>>());
    }

    #[test]
    fn pins_thread_count() {
        assert_eq!(install(Some(1), rayon::current_num_threads), 1);
        assert_eq!(install(Some(3), rayon::current_num_threads), 3);
    }
}
