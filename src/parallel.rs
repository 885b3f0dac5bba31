//! Thread pools for batch calls: `None` runs on rayon's global pool (all cores), `Some(n)` on a
//! cached pool of exactly `n` threads, so callers and benchmarks can pin the thread count.

use std::collections::HashMap;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_thread_count() {
        assert_eq!(install(Some(1), rayon::current_num_threads), 1);
        assert_eq!(install(Some(3), rayon::current_num_threads), 3);
    }
}
