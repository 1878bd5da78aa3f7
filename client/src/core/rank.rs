//! Rescaling and top-k selection on the device.

/// Scores rescaled to float: `score * query_scale * item_scale[i]` (item scales may be
/// empty, meaning 1).
pub fn rescale(scores: &[i64], query_scale: f64, item_scales: &[f32]) -> Vec<f64> {
    scores
        .iter()
        .enumerate()
        .map(|(i, &s)| s as f64 * query_scale * item_scales.get(i).map_or(1.0, |&x| x as f64))
        .collect()
}

/// The k best (index, score) pairs, best first, ties broken by lower index, in one pass
/// with a bounded heap: O(M + k log k) comparisons in the usual case, no full sort and no
/// copy of the scores. NaN scores rank last.
pub fn top_k<T: Copy + PartialOrd>(scores: &[T], k: usize) -> Vec<(usize, T)> {
    use std::collections::BinaryHeap;
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    // The heap's top is the worst of the best k so far.
    let mut heap: BinaryHeap<Ranked<T>> = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        let entry = Ranked(i, s);
        if heap.len() < k {
            heap.push(entry);
        } else if let Some(worst) = heap.peek() {
            // Fast path: strictly below the k-th best cannot enter.
            if s.partial_cmp(&worst.1) == Some(std::cmp::Ordering::Less) {
                continue;
            }
            if entry < *worst {
                heap.pop();
                heap.push(entry);
            }
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|Ranked(i, s)| (i, s))
        .collect()
}

/// An (index, score) pair ordered best first: "less" means ranked higher.
struct Ranked<T>(usize, T);

impl<T: PartialOrd> Ranked<T> {
    fn rank(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let nan_self = self.1.partial_cmp(&self.1).is_none();
        let nan_other = other.1.partial_cmp(&other.1).is_none();
        match (nan_self, nan_other) {
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (true, true) => self.0.cmp(&other.0),
            (false, false) => match other.1.partial_cmp(&self.1) {
                Some(Ordering::Equal) | None => self.0.cmp(&other.0),
                Some(o) => o,
            },
        }
    }
}

impl<T: PartialOrd> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == std::cmp::Ordering::Equal
    }
}

impl<T: PartialOrd> Eq for Ranked<T> {}

impl<T: PartialOrd> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: PartialOrd> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_a_full_sort() {
        let scores: Vec<i64> = (0..1000).map(|i| (i * 7919 % 1009) - 500).collect();
        let mut sorted: Vec<(usize, i64)> = scores.iter().copied().enumerate().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [0, 1, 10, 999, 1000, 2000] {
            assert_eq!(top_k(&scores, k), sorted[..k.min(1000)].to_vec());
        }
    }

    #[test]
    fn ties_and_nan() {
        assert_eq!(top_k(&[1, 3, 3, 2], 2), vec![(1, 3), (2, 3)]);
        assert_eq!(
            top_k(&[f64::NAN, 1.0, 2.0], 3)
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        assert_eq!(rescale(&[2, -4], 0.5, &[1.0, 2.0]), vec![1.0, -4.0]);
    }
}
