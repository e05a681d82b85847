//! Randomness from the operating system (via ring's `SystemRandom`).

use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

/// Fills `out` with cryptographically secure random bytes from the OS.
pub fn random_bytes(out: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(out).map_err(|_| CryptoError::Rng)
}

/// Returns `N` cryptographically secure random bytes from the OS.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    random_bytes(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_differs() {
        let a: [u8; 32] = random_array().unwrap();
        let b: [u8; 32] = random_array().unwrap();
        assert_ne!(a, b);
        let mut empty = [0u8; 0];
        random_bytes(&mut empty).unwrap();
    }
}
