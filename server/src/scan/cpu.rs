//! What this CPU can do and prefers, as the kernels ask it (each answer cached).

/// Whether this CPU is AMD's (CPUID vendor `AuthenticAMD`): the scan's tuning depends on
/// it (see [`super::tuning`]).
pub fn is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AMD.get_or_init(|| {
            let id = std::arch::x86_64::__cpuid(0);
            let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx]
                .iter()
                .flat_map(|r| r.to_le_bytes())
                .collect();
            vendor == b"AuthenticAMD"
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512F and BW (byte-masked stores).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512bw_detected() -> bool {
    avx512_detected() && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Whether this CPU has AVX-512F (`is_x86_feature_detected!` caches its answer). Checked
/// before every call of an AVX-512 kernel, so no `Kernel` value can run one without it.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}
