//! Preference building on the device.
//!
//! A profile combines preferences the user states explicitly (zero-party data: "I like
//! hiking gear", as embeddings the app supplies) with recent in-session signals (embeddings
//! of items just viewed), each signal decaying with a half-life. The app sets the weights.
//! The profile is a file the app owns: the user can view it (JSON), export it and delete
//! it. Nothing of it leaves the device unencrypted: only the combined vector, encrypted,
//! is ever sent.
//!
//! The profile itself reads no clock and no file: the app passes the time
//! ([`PreferenceProfile::combine`] takes milliseconds since the Unix epoch) and keeps the
//! JSON ([`PreferenceProfile::to_json`], [`PreferenceProfile::from_json`]) where it keeps
//! the user's data. With the `http` feature (native apps), [`now_unix_ms`] and the file
//! helpers `save`, `load` and `delete` do both for it.

#[cfg(feature = "http")]
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// A preference the user stated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatedPreference {
    /// What the user said, for display ("hiking gear").
    pub label: String,
    /// Its embedding.
    pub vector: Vec<f32>,
    /// Its weight among stated preferences.
    pub weight: f32,
}

/// A signal observed in the session (an item viewed, added to the basket...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSignal {
    /// The item's embedding.
    pub vector: Vec<f32>,
    /// When it was observed, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Its weight before decay.
    pub weight: f32,
}

/// How stated preferences and session signals are mixed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileWeights {
    /// Weight of the stated preferences as a whole.
    pub stated: f32,
    /// Weight of the session signals as a whole.
    pub session: f32,
    /// A signal's weight halves every this many seconds.
    pub half_life_seconds: f64,
}

impl Default for ProfileWeights {
    fn default() -> Self {
        ProfileWeights {
            stated: 1.0,
            session: 1.0,
            half_life_seconds: 30.0 * 60.0,
        }
    }
}

/// The user's preference profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferenceProfile {
    /// Stated preferences.
    pub stated: Vec<StatedPreference>,
    /// Session signals, oldest first.
    pub signals: Vec<SessionSignal>,
    /// The mix.
    pub weights: ProfileWeights,
}

/// Milliseconds since the Unix epoch, now, from the system clock.
#[cfg(feature = "http")]
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl PreferenceProfile {
    /// An empty profile with these weights.
    pub fn new(weights: ProfileWeights) -> Self {
        PreferenceProfile {
            stated: Vec::new(),
            signals: Vec::new(),
            weights,
        }
    }

    /// Record a stated preference.
    pub fn state(&mut self, label: impl Into<String>, vector: Vec<f32>, weight: f32) {
        self.stated.push(StatedPreference {
            label: label.into(),
            vector,
            weight,
        });
    }

    /// Record a session signal observed at `at_unix_ms`.
    pub fn observe(&mut self, vector: Vec<f32>, weight: f32, at_unix_ms: u64) {
        self.signals.push(SessionSignal {
            vector,
            at_unix_ms,
            weight,
        });
    }

    /// Drop signals older than `max_age_seconds`.
    pub fn prune(&mut self, now_unix_ms: u64, max_age_seconds: f64) {
        self.signals.retain(|s| {
            (now_unix_ms.saturating_sub(s.at_unix_ms) as f64) / 1000.0 <= max_age_seconds
        });
    }

    /// The combined preference vector at `now_unix_ms`, L2-normalised: the weighted mean of
    /// the stated preferences and of the decayed session signals, mixed by the profile's
    /// weights. `None` when there is nothing to combine (or the parts cancel out).
    pub fn combine(&self, now_unix_ms: u64) -> Result<Option<Vec<f32>>, ClientError> {
        let dims: Vec<usize> = self
            .stated
            .iter()
            .map(|p| p.vector.len())
            .chain(self.signals.iter().map(|s| s.vector.len()))
            .collect();
        let Some(&d) = dims.first() else {
            return Ok(None);
        };
        if dims.iter().any(|&x| x != d) {
            return Err(ClientError::SpaceMismatch(
                "the profile mixes vectors of different dimensions".into(),
            ));
        }
        let mut stated = vec![0.0f64; d];
        let mut stated_total = 0.0;
        for p in &self.stated {
            add_unit(&mut stated, &p.vector, p.weight as f64);
            stated_total += p.weight as f64;
        }
        let mut session = vec![0.0f64; d];
        let mut session_total = 0.0;
        for s in &self.signals {
            let age = now_unix_ms.saturating_sub(s.at_unix_ms) as f64 / 1000.0;
            let w = s.weight as f64 * 0.5f64.powf(age / self.weights.half_life_seconds.max(1e-9));
            add_unit(&mut session, &s.vector, w);
            // Normalised by the undecayed weights, so that decay lowers the session's
            // share against the stated preferences.
            session_total += s.weight as f64;
        }
        let mut out = vec![0.0f64; d];
        for (parts, total, weight) in [
            (&stated, stated_total, self.weights.stated),
            (&session, session_total, self.weights.session),
        ] {
            if total > 0.0 {
                for (o, v) in out.iter_mut().zip(parts.iter()) {
                    *o += weight as f64 * v / total;
                }
            }
        }
        let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Ok(None);
        }
        Ok(Some(out.iter().map(|v| (v / norm) as f32).collect()))
    }

    /// The profile as JSON, for the user to view or export, and for the app to keep.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("a profile of strings and numbers always serialises to JSON")
    }

    /// A profile from the JSON that [`PreferenceProfile::to_json`] wrote.
    pub fn from_json(json: &str) -> Result<Self, ClientError> {
        serde_json::from_str(json).map_err(ClientError::Profile)
    }

    /// Save to a file the app owns (written to a temporary file, then renamed).
    #[cfg(feature = "http")]
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Load a saved profile.
    #[cfg(feature = "http")]
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        Self::from_json(&std::fs::read_to_string(path)?)
    }

    /// Delete the saved profile (a missing file is not an error).
    #[cfg(feature = "http")]
    pub fn delete(path: &Path) -> Result<(), ClientError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Add `weight` times the unit vector of `v` (zero vectors add nothing).
fn add_unit(acc: &mut [f64], v: &[f32], weight: f64) {
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += weight * x as f64 / norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_decay_and_stated_preferences_stay() {
        let mut p = PreferenceProfile::new(ProfileWeights {
            stated: 1.0,
            session: 1.0,
            half_life_seconds: 60.0,
        });
        p.state("x", vec![1.0, 0.0], 1.0);
        p.observe(vec![0.0, 2.0], 1.0, 0);
        let fresh = p.combine(0).unwrap().unwrap();
        assert!((fresh[0] - fresh[1]).abs() < 1e-6, "{fresh:?}");
        let later = p.combine(600_000).unwrap().unwrap();
        assert!(later[0] > 0.99 && later[1] < 0.01, "{later:?}");
        p.prune(600_000, 300.0);
        assert!(p.signals.is_empty());
    }

    #[test]
    fn mixed_dimensions_are_refused_and_empty_is_none() {
        let mut p = PreferenceProfile::default();
        assert_eq!(p.combine(0).unwrap(), None);
        p.state("a", vec![1.0], 1.0);
        p.state("b", vec![1.0, 2.0], 1.0);
        assert!(p.combine(0).is_err());
    }

    #[test]
    fn json_round_trips_and_bad_json_is_a_typed_error() {
        let mut p = PreferenceProfile::default();
        p.state("tea", vec![0.5, 0.5], 2.0);
        p.observe(vec![1.0, 0.0], 0.5, 1_700_000_000_000);
        assert_eq!(PreferenceProfile::from_json(&p.to_json()).unwrap(), p);
        assert!(matches!(
            PreferenceProfile::from_json("{\"stated\": 3}"),
            Err(ClientError::Profile(_))
        ));
    }

    #[cfg(feature = "http")]
    #[test]
    fn save_view_load_delete() {
        let path =
            std::env::temp_dir().join(format!("blindscore-profile-{}.json", std::process::id()));
        let mut p = PreferenceProfile::default();
        p.state("tea", vec![0.5, 0.5], 2.0);
        p.save(&path).unwrap();
        assert!(p.to_json().contains("\"tea\""));
        assert_eq!(PreferenceProfile::load(&path).unwrap(), p);
        PreferenceProfile::delete(&path).unwrap();
        assert!(!path.exists());
        PreferenceProfile::delete(&path).unwrap();
    }
}
