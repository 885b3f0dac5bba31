//! Disjoint sets over `0..n` with path halving and union by size.

/// A union-find forest over `0..n` (indices stored as u32: 8 bytes per element).
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize, "at most u32::MAX elements");
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root of `x`'s set, halving the path on the way.
    #[inline]
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grand = self.parent[self.parent[x] as usize];
            self.parent[x] = grand;
            x = grand as usize;
        }
        x
    }

    /// Join the sets of `x` and `y`; returns whether they were apart.
    #[inline]
    pub fn union(&mut self, x: usize, y: usize) -> bool {
        let (mut rx, mut ry) = (self.find(x), self.find(y));
        if rx == ry {
            return false;
        }
        if self.size[rx] < self.size[ry] {
            std::mem::swap(&mut rx, &mut ry);
        }
        self.parent[ry] = rx as u32;
        self.size[rx] += self.size[ry];
        true
    }

    /// For every element, the smallest element of its set.
    pub fn min_labels(&mut self) -> Vec<i64> {
        let n = self.len();
        let mut min_of_root = vec![u32::MAX; n];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let root = self.find(i);
            if min_of_root[root] == u32::MAX {
                min_of_root[root] = i as u32;
            }
            out.push(i64::from(min_of_root[root]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_labels() {
        let mut uf = UnionFind::new(7);
        assert!(uf.union(5, 3));
        assert!(uf.union(3, 6));
        assert!(!uf.union(6, 5));
        assert!(uf.union(2, 1));
        assert_eq!(uf.find(6), uf.find(5));
        assert_ne!(uf.find(1), uf.find(3));
        assert_eq!(uf.min_labels(), [0, 1, 1, 3, 4, 3, 3]);
    }

    #[test]
    fn long_chain_compresses() {
        let n = 100_000;
        let mut uf = UnionFind::new(n);
        for i in (1..n).rev() {
            uf.union(i - 1, i);
        }
        assert!(uf.min_labels().iter().all(|&l| l == 0));
    }
}
