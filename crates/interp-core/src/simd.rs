//! Run-time choice of instruction set for the CPU kernels of the interp-rs crates.
//!
//! A kernel is written once as an `#[inline(always)]` function generic over
//! `const FMA: bool`; [`multiversion!`](crate::multiversion) compiles it for AVX-512, for
//! AVX2 + FMA and portably, and defines a dispatcher that takes the [`Simd`] level to run.
//! Callers detect the level once with [`Simd::detect`]; tests pass every level the CPU has
//! ([`Simd::available`]) and compare against the portable one.

/// An instruction-set level the multiversioned kernels are compiled for, widest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Whatever the build targets (SSE2 on a default x86-64 build).
    Portable,
    /// AVX2 with FMA: 8 f32 lanes.
    Avx2Fma,
    /// AVX-512F (with AVX2 and FMA): 16 f32 lanes.
    Avx512,
}

impl Simd {
    /// The widest level this CPU runs.
    #[inline]
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                return if has!("avx512f") {
                    Simd::Avx512
                } else {
                    Simd::Avx2Fma
                };
            }
        }
        Simd::Portable
    }

    /// Every level this CPU runs, portable first.
    pub fn available() -> Vec<Simd> {
        let widest = Simd::detect();
        [Simd::Portable, Simd::Avx2Fma, Simd::Avx512]
            .into_iter()
            .filter(|&level| level <= widest)
            .collect()
    }
}

/// `a · b + c`, fused when `FMA` (kernels pass `true` only in their FMA-enabled variants: a
/// portable build would call the slow libm `fmaf`).
#[inline(always)]
pub fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `multiversion!(name => kernel(arg: Type, ...))` defines `fn name(simd: Simd, arg: Type,
/// ...)`, which runs `kernel::<true>` compiled for AVX-512 or AVX2 + FMA as `simd` says, else
/// the portable `kernel::<false>`. `kernel` must be `#[inline(always)]` so that it is compiled
/// inside each variant.
///
/// # Panics
/// The defined function panics if `simd` is wider than [`Simd::detect`] (running the variant
/// would be undefined behaviour).
#[macro_export]
macro_rules! multiversion {
    ($vis:vis $name:ident => $generic:ident ( $($a:ident : $t:ty),* $(,)? )) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(simd: $crate::simd::Simd, $($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($a: $t),*) {
                    $generic::<true>($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) {
                    $generic::<true>($($a),*)
                }
                assert!(
                    simd <= $crate::simd::Simd::detect(),
                    "this CPU lacks the instructions of {simd:?}"
                );
                match simd {
                    // SAFETY: the CPU has the features each variant is compiled for (asserted
                    // just above), the only requirement of a `target_feature` function.
                    $crate::simd::Simd::Avx512 => return unsafe { avx512($($a),*) },
                    // SAFETY: as above.
                    $crate::simd::Simd::Avx2Fma => return unsafe { avx2($($a),*) },
                    $crate::simd::Simd::Portable => {}
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = simd;
            $generic::<false>($($a),*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn dot<const FMA: bool>(a: &[f32], b: &[f32], out: &mut f32) {
        *out = a
            .iter()
            .zip(b)
            .fold(0.0, |s, (&x, &y)| fmadd::<FMA>(x, y, s));
    }

    multiversion!(dot_mv => dot(a: &[f32], b: &[f32], out: &mut f32));

    #[test]
    fn every_available_level_runs_and_agrees() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let levels = Simd::available();
        assert_eq!(levels[0], Simd::Portable);
        assert_eq!(*levels.last().unwrap(), Simd::detect());
        for level in levels {
            let mut got = 0.0;
            dot_mv(level, &a, &b, &mut got);
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{level:?}"
            );
        }
    }
}
