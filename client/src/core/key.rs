//! The per-query secret key.
//!
//! With public masks fixed per catalog version, two queries under one key would reveal the
//! difference of the preferences (b - b' = e - e' + Delta (u - u')). So a key is drawn
//! fresh from the operating system's CSPRNG for every query, cannot be cloned, is moved
//! into the one query it encrypts, and is zeroised when dropped. There is no way to
//! encrypt twice with one key.

use zeroize::Zeroizing;

use crate::error::ClientError;

/// A binary GLWE secret key of N coefficients (k = 1). Not `Clone`; zeroised on drop.
pub struct SecretKey {
    bits: Zeroizing<Vec<u64>>,
}

impl SecretKey {
    /// Draw a fresh key from the OS's CSPRNG. Public only so that the cost of drawing one
    /// can be measured: nothing outside this crate can read or use a key.
    pub fn generate(n: usize) -> Result<Self, ClientError> {
        let mut bytes = Zeroizing::new(vec![0u8; n.div_ceil(8)]);
        getrandom::getrandom(&mut bytes).map_err(ClientError::Randomness)?;
        let bits = (0..n)
            .map(|i| ((bytes[i / 8] >> (i % 8)) & 1) as u64)
            .collect();
        Ok(SecretKey {
            bits: Zeroizing::new(bits),
        })
    }

    /// A key with given bits (the known-answer tests' hook; not in any build of the
    /// published crate).
    #[cfg(test)]
    pub(crate) fn from_bits(bits: Vec<u64>) -> Self {
        assert!(
            bits.iter().all(|b| *b <= 1),
            "a binary key has bits 0 and 1"
        );
        SecretKey {
            bits: Zeroizing::new(bits),
        }
    }

    /// The key's coefficients (0 or 1).
    pub(crate) fn bits(&self) -> &[u64] {
        &self.bits
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_are_binary_balanced_and_differ() {
        let a = SecretKey::generate(2048).unwrap();
        let b = SecretKey::generate(2048).unwrap();
        assert!(a.bits().iter().all(|x| *x <= 1));
        let ones = a.bits().iter().sum::<u64>();
        assert!((800..1250).contains(&ones), "{ones} ones");
        assert_ne!(a.bits(), b.bits());
        assert_eq!(format!("{a:?}"), "SecretKey(<redacted>)");
    }
}
