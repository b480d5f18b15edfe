//! Go's `sort.Sort` as Go 1.19 implements it (pattern-defeating quicksort), which confd's
//! `sortByLength` and `sortKVByLength` call. It is not stable: items of equal length come out
//! in an order that depends on the algorithm's every step (from 13 items on, when insertion sort
//! is no longer the whole sort), so terad repeats those steps exactly, swap for swap, to write
//! the same bytes as confd. A port of Go's `sort/zsortinterface.go` and `sort.go` (BSD-style
//! licence, © The Go Authors), with Go's names; `less(i, j)` and `swap(i, j)` work on indices as
//! Go's `sort.Interface` does.
//!
//! Proven against Go: `tests/conformance/cases/sortByLength_pdqsort_*` were rendered by confd
//! itself, and `tests/conformance/go-sort/` holds what Go 1.19's `sort.Sort` did with 2,000
//! generated inputs (how: its README).

/// Sorts `data` by `less` exactly as Go 1.19's `sort.Sort` does.
pub fn sort<T>(data: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = data.len();
    if n <= 1 {
        return;
    }
    let limit = bits_len(n);
    let mut s = Sorter { data, less };
    s.pdqsort(0, n as isize, limit);
}

/// Go's `bits.Len`: the number of bits needed to represent `x`.
fn bits_len(x: usize) -> u32 {
    usize::BITS - x.leading_zeros()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortedHint {
    Unknown,
    Increasing,
    Decreasing,
}

struct Sorter<'a, T, F> {
    data: &'a mut [T],
    less: F,
}

impl<T, F: Fn(&T, &T) -> bool> Sorter<'_, T, F> {
    fn less(&self, i: isize, j: isize) -> bool {
        (self.less)(&self.data[i as usize], &self.data[j as usize])
    }

    fn swap(&mut self, i: isize, j: isize) {
        self.data.swap(i as usize, j as usize);
    }

    fn insertion_sort(&mut self, a: isize, b: isize) {
        for i in a + 1..b {
            let mut j = i;
            while j > a && self.less(j, j - 1) {
                self.swap(j, j - 1);
                j -= 1;
            }
        }
    }

    fn sift_down(&mut self, lo: isize, hi: isize, first: isize) {
        let mut root = lo;
        loop {
            let mut child = 2 * root + 1;
            if child >= hi {
                return;
            }
            if child + 1 < hi && self.less(first + child, first + child + 1) {
                child += 1;
            }
            if !self.less(first + root, first + child) {
                return;
            }
            self.swap(first + root, first + child);
            root = child;
        }
    }

    fn heap_sort(&mut self, a: isize, b: isize) {
        let first = a;
        let lo = 0;
        let hi = b - a;
        let mut i = (hi - 1) / 2;
        while i >= 0 {
            self.sift_down(i, hi, first);
            i -= 1;
        }
        let mut i = hi - 1;
        while i >= 0 {
            self.swap(first, first + i);
            self.sift_down(lo, i, first);
            i -= 1;
        }
    }

    fn pdqsort(&mut self, mut a: isize, mut b: isize, mut limit: u32) {
        const MAX_INSERTION: isize = 12;
        let mut was_balanced = true;
        let mut was_partitioned = true;
        loop {
            let length = b - a;
            if length <= MAX_INSERTION {
                self.insertion_sort(a, b);
                return;
            }
            // Fall back to heapsort if too many bad choices were made.
            if limit == 0 {
                self.heap_sort(a, b);
                return;
            }
            // If the last partitioning was imbalanced, shuffle some elements.
            if !was_balanced {
                self.break_patterns(a, b);
                limit -= 1;
            }
            let (mut pivot, mut hint) = self.choose_pivot(a, b);
            if hint == SortedHint::Decreasing {
                self.reverse_range(a, b);
                pivot = (b - 1) - (pivot - a);
                hint = SortedHint::Increasing;
            }
            // Probably already sorted: try insertion sort on a few misplaced elements.
            if was_balanced
                && was_partitioned
                && hint == SortedHint::Increasing
                && self.partial_insertion_sort(a, b)
            {
                return;
            }
            // The predecessor is no greater than the pivot: everything equal to it goes left.
            if a > 0 && !self.less(a - 1, pivot) {
                a = self.partition_equal(a, b, pivot);
                continue;
            }
            let (mid, already_partitioned) = self.partition(a, b, pivot);
            was_partitioned = already_partitioned;
            let (left_len, right_len) = (mid - a, b - mid);
            let balance_threshold = length / 8;
            if left_len < right_len {
                was_balanced = left_len >= balance_threshold;
                self.pdqsort(a, mid, limit);
                a = mid + 1;
            } else {
                was_balanced = right_len >= balance_threshold;
                self.pdqsort(mid + 1, b, limit);
                b = mid;
            }
        }
    }

    fn partition(&mut self, a: isize, b: isize, pivot: isize) -> (isize, bool) {
        self.swap(a, pivot);
        let (mut i, mut j) = (a + 1, b - 1);
        while i <= j && self.less(i, a) {
            i += 1;
        }
        while i <= j && !self.less(j, a) {
            j -= 1;
        }
        if i > j {
            self.swap(j, a);
            return (j, true);
        }
        self.swap(i, j);
        i += 1;
        j -= 1;
        loop {
            while i <= j && self.less(i, a) {
                i += 1;
            }
            while i <= j && !self.less(j, a) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
        self.swap(j, a);
        (j, false)
    }

    fn partition_equal(&mut self, a: isize, b: isize, pivot: isize) -> isize {
        self.swap(a, pivot);
        let (mut i, mut j) = (a + 1, b - 1);
        loop {
            while i <= j && !self.less(a, i) {
                i += 1;
            }
            while i <= j && self.less(a, j) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
        i
    }

    fn partial_insertion_sort(&mut self, a: isize, b: isize) -> bool {
        const MAX_STEPS: usize = 5;
        const SHORTEST_SHIFTING: isize = 50;
        let mut i = a + 1;
        for _ in 0..MAX_STEPS {
            while i < b && !self.less(i, i - 1) {
                i += 1;
            }
            if i == b {
                return true;
            }
            if b - a < SHORTEST_SHIFTING {
                return false;
            }
            self.swap(i, i - 1);
            // Shift the smaller one to the left.
            if i - a >= 2 {
                let mut j = i - 1;
                while j >= 1 {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                    j -= 1;
                }
            }
            // Shift the greater one to the right.
            if b - i >= 2 {
                let mut j = i + 1;
                while j < b {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                    j += 1;
                }
            }
        }
        false
    }

    fn break_patterns(&mut self, a: isize, b: isize) {
        let length = b - a;
        if length >= 8 {
            // Go's xorshift, seeded with the length each time.
            let mut random = length as u64;
            let modulus = 1usize << bits_len(length as usize);
            let mut idx = a + (length / 4) * 2 - 1;
            while idx <= a + (length / 4) * 2 + 1 {
                random ^= random << 13;
                random ^= random >> 17;
                random ^= random << 5;
                let mut other = (random as usize & (modulus - 1)) as isize;
                if other >= length {
                    other -= length;
                }
                self.swap(idx, a + other);
                idx += 1;
            }
        }
    }

    fn choose_pivot(&mut self, a: isize, b: isize) -> (isize, SortedHint) {
        const SHORTEST_NINTHER: isize = 50;
        const MAX_SWAPS: usize = 4 * 3;
        let l = b - a;
        let mut swaps = 0;
        let mut i = a + l / 4;
        let mut j = a + l / 4 * 2;
        let mut k = a + l / 4 * 3;
        if l >= 8 {
            if l >= SHORTEST_NINTHER {
                // Tukey's ninther.
                i = self.median_adjacent(i, &mut swaps);
                j = self.median_adjacent(j, &mut swaps);
                k = self.median_adjacent(k, &mut swaps);
            }
            // The median of medians.
            j = self.median(i, j, k, &mut swaps);
        }
        match swaps {
            0 => (j, SortedHint::Increasing),
            MAX_SWAPS => (j, SortedHint::Decreasing),
            _ => (j, SortedHint::Unknown),
        }
    }

    fn order2(&self, a: isize, b: isize, swaps: &mut usize) -> (isize, isize) {
        if self.less(b, a) {
            *swaps += 1;
            return (b, a);
        }
        (a, b)
    }

    fn median(&self, a: isize, b: isize, c: isize, swaps: &mut usize) -> isize {
        let (a, b) = self.order2(a, b, swaps);
        let (b, _) = self.order2(b, c, swaps);
        let (_, b) = self.order2(a, b, swaps);
        b
    }

    fn median_adjacent(&self, a: isize, swaps: &mut usize) -> isize {
        self.median(a - 1, a, a + 1, swaps)
    }

    fn reverse_range(&mut self, a: isize, b: isize) {
        let (mut i, mut j) = (a, b - 1);
        while i < j {
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator of `tests/conformance/go-sort/record.go`, step for step.
    struct Inputs(u64);

    impl Inputs {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// (length, id) items for `seed`.
        fn of(seed: u64) -> Vec<(u64, usize)> {
            let mut r = Inputs(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let n = (r.next() % 700) as usize;
            let distinct = [1, 2, 3, 5, 20, 1000][(r.next() % 6) as usize];
            let shape = r.next() % 4;
            let mut items: Vec<(u64, usize)> = (0..n)
                .map(|i| {
                    let (i64_, n64) = (i as u64, n as u64);
                    let length = match shape {
                        0 => r.next() % distinct,
                        2 => (n64 - i64_) * distinct / n64,
                        _ => i64_ * distinct / n64,
                    };
                    (length, i)
                })
                .collect();
            if shape == 3 && n > 0 {
                for _ in 0..5 {
                    let p = (r.next() % n as u64) as usize;
                    let q = (r.next() % n as u64) as usize;
                    items.swap(p, q);
                }
            }
            items
        }
    }

    /// FNV-1a (64 bits) of the ids in order, each in decimal followed by a comma.
    fn fingerprint(items: &[(u64, usize)]) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, id) in items {
            for byte in format!("{id},").bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        hash
    }

    #[test]
    fn every_recorded_go_sort_is_reproduced() {
        let recorded = include_str!("../../../tests/conformance/go-sort/expected.txt");
        let mut checked = 0;
        for line in recorded.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split(' ').collect();
            let [seed, n, hash] = fields.as_slice() else {
                panic!("bad line {line:?}");
            };
            let mut items = Inputs::of(seed.parse().unwrap());
            assert_eq!(items.len().to_string(), *n, "seed {seed}");
            sort(&mut items, |x, y| x.0 < y.0);
            assert!(items.windows(2).all(|w| w[0].0 <= w[1].0));
            assert_eq!(
                format!("{:016x}", fingerprint(&items)),
                *hash,
                "seed {seed}"
            );
            checked += 1;
        }
        assert_eq!(checked, 2000);
    }

    #[test]
    fn thirteen_items_are_no_longer_insertion_sorted() {
        // confd's output for this list (tests/conformance/cases/sortByLength_pdqsort_13_ties).
        let mut items = vec![
            "k", "mm", "ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st", "uv", "wx", "y",
        ];
        sort(&mut items, |a, b| a.len() < b.len());
        assert_eq!(
            items,
            [
                "k", "y", "ij", "cd", "ef", "gh", "ab", "kl", "mn", "op", "qr", "st", "uv", "wx",
                "mm"
            ]
        );
    }
}
