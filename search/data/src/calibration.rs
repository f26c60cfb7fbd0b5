//! Images as a network's input outside training: a seeded sample for INT8 calibration, or given
//! indices for evaluation, resized to the network's input and normalised like its training.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{ImageSet, Transform};

/// `n` images of `set` (all of them when it has fewer), chosen with `seed`, resized to `size x size`
/// (bilinear) when they are another size, and normalised with `mean` / `std` (of pixels in `0..1`).
/// Each is `channels x size x size` values, CHW.
pub fn calibration_tensors(
    set: &ImageSet,
    n: usize,
    seed: u64,
    size: usize,
    mean: &[f32],
    std: &[f32],
) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = sample(&mut rng, set.len(), n.min(set.len())).into_vec();
    chosen.sort_unstable();
    let transform = Transform {
        crop: crate::Crop::None,
        flip: false,
        mean: mean.to_vec(),
        std: std.to_vec(),
    };
    normalised_images(set, &chosen, size, &transform)
}

/// The images of `set` at `indices`, resized to `size x size` when they are another size and normalised
/// by `transform` (its crop and flip are not applied), each `channels x size x size` values.
pub fn normalised_images(
    set: &ImageSet,
    indices: &[usize],
    size: usize,
    transform: &Transform,
) -> Vec<Vec<f32>> {
    let c = set.channels;
    indices
        .iter()
        .map(|&i| {
            let pixels = resized(set.image(i), c, set.height, set.width, size);
            let mut out = vec![0f32; c * size * size];
            transform.apply::<ChaCha8Rng>(&pixels, c, size, size, None, &mut out);
            out
        })
        .collect()
}

/// A `c x h x w` image as `c x size x size` (bilinear, per channel); unchanged when already that size.
fn resized(image: &[u8], c: usize, h: usize, w: usize, size: usize) -> Vec<u8> {
    if h == size && w == size {
        return image.to_vec();
    }
    let mut out = Vec::with_capacity(c * size * size);
    for ch in 0..c {
        let plane = image::GrayImage::from_raw(
            w as u32,
            h as u32,
            image[ch * h * w..(ch + 1) * h * w].to_vec(),
        )
        .unwrap_or_else(|| unreachable!("a plane holds h x w bytes"));
        let scaled = image::imageops::resize(
            &plane,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        );
        out.extend_from_slice(scaled.as_raw());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ImageSet {
        ImageSet {
            pixels: (0..10 * 3 * 4 * 4).map(|v| (v % 256) as u8).collect(),
            labels: (0..10).map(|i| i % 2).collect(),
            classes: vec!["a".into(), "b".into()],
            channels: 3,
            height: 4,
            width: 4,
        }
    }

    #[test]
    fn a_seeded_sample_resized_and_normalised() {
        let set = set();
        let a = calibration_tensors(&set, 4, 1, 8, &[0.5; 3], &[0.25; 3]);
        assert_eq!(a.len(), 4);
        assert!(a.iter().all(|t| t.len() == 3 * 8 * 8));
        assert_eq!(a, calibration_tensors(&set, 4, 1, 8, &[0.5; 3], &[0.25; 3]));
        assert_ne!(a, calibration_tensors(&set, 4, 2, 8, &[0.5; 3], &[0.25; 3]));
        assert_eq!(
            calibration_tensors(&set, 50, 1, 4, &[0.5; 3], &[0.25; 3]).len(),
            10
        );
        // At the native size the values are the normalised pixels themselves.
        let native = calibration_tensors(&set, 10, 1, 4, &[0.0; 3], &[1.0; 3]);
        let first = native[0][0];
        assert!((first * 255.0 - f32::from(set.image(0)[0])).abs() < 1e-3);
    }
}
