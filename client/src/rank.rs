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

/// The k best (index, score) pairs, best first, ties broken by lower index, in
/// O(M + k log k): a selection, not a full sort. NaN scores rank last.
pub fn top_k<T: Copy + PartialOrd>(scores: &[T], k: usize) -> Vec<(usize, T)> {
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    let better = |a: &(usize, T), b: &(usize, T)| -> std::cmp::Ordering {
        match b.1.partial_cmp(&a.1) {
            Some(std::cmp::Ordering::Equal) => a.0.cmp(&b.0),
            Some(o) => o,
            // NaN: rank it after everything.
            None => match (a.1.partial_cmp(&a.1), b.1.partial_cmp(&b.1)) {
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => a.0.cmp(&b.0),
            },
        }
    };
    let mut pairs: Vec<(usize, T)> = scores.iter().copied().enumerate().collect();
    if k < pairs.len() {
        pairs.select_nth_unstable_by(k - 1, better);
        pairs.truncate(k);
    }
    pairs.sort_unstable_by(better);
    pairs
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
