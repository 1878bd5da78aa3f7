//! Ranking quality against the float ranking: what the encrypted pipeline's exactness is
//! worth once the vectors are quantized.

use serde::Serialize;

/// How close encrypted rankings come to the float ranking.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct QualityReport {
    /// Queries evaluated.
    pub queries: usize,
    /// k.
    pub k: usize,
    /// Mean recall@k: a returned item counts when its float score is at least the k-th best
    /// float score (ties count).
    pub recall: f64,
    /// The same with the ann-benchmarks tolerance: within `tolerance` of the k-th best.
    pub tolerant_recall: f64,
    /// The tolerance used.
    pub tolerance: f64,
    /// Mean of (sum of the returned items' float scores) / (sum of the k best float scores).
    pub score_ratio: f64,
}

/// Compare rankings (item indices, best first, one list per query) with the float ranking
/// of `items` (row-major, `dimension` wide) for `queries` (row-major). Rows and queries are
/// L2-normalised first, so scores are cosine similarities.
pub fn evaluate(
    items: &[f32],
    queries: &[f32],
    dimension: usize,
    rankings: &[Vec<usize>],
    k: usize,
    tolerance: f64,
) -> QualityReport {
    let unit = |v: &[f32]| -> Vec<f64> {
        let n = v
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        v.iter().map(|&x| x as f64 / n).collect()
    };
    let rows: Vec<Vec<f64>> = items.chunks_exact(dimension).map(unit).collect();
    let (mut recall, mut tolerant, mut ratio) = (0.0, 0.0, 0.0);
    let n = rankings.len().min(queries.len() / dimension);
    for (q, ranking) in queries.chunks_exact(dimension).zip(rankings).take(n) {
        let q = unit(q);
        let scores: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().zip(&q).map(|(a, b)| a * b).sum())
            .collect();
        let mut sorted = scores.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let k = k.min(sorted.len());
        let kth = sorted[k - 1];
        let best: f64 = sorted[..k].iter().sum();
        let returned = &ranking[..k.min(ranking.len())];
        recall += returned.iter().filter(|&&i| scores[i] >= kth).count() as f64 / k as f64;
        tolerant += returned
            .iter()
            .filter(|&&i| scores[i] >= kth - tolerance)
            .count() as f64
            / k as f64;
        ratio += returned.iter().map(|&i| scores[i]).sum::<f64>() / best;
    }
    let m = n.max(1) as f64;
    QualityReport {
        queries: n,
        k,
        recall: recall / m,
        tolerant_recall: tolerant / m,
        tolerance,
        score_ratio: ratio / m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_imperfect_rankings() {
        let items = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0];
        let q = [1.0, 0.0];
        let perfect = evaluate(&items, &q, 2, &[vec![0, 1]], 2, 1e-3);
        assert_eq!((perfect.recall, perfect.tolerant_recall), (1.0, 1.0));
        let wrong = evaluate(&items, &q, 2, &[vec![0, 2]], 2, 1e-3);
        assert_eq!(wrong.recall, 0.5);
        assert!(wrong.score_ratio < 1.0);
    }
}
