//! Training augmentation (random crop with padding, or random-resized crop; horizontal flip) and
//! per-channel normalisation, from `u8` images to `f32` CHW tensors.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How training images are cropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Crop {
    /// None.
    None,
    /// Zero-pad by `pad` pixels on each side, then crop the original size at a random place (CIFAR).
    Pad {
        /// Padding in pixels.
        pad: usize,
    },
    /// Random area fraction in `min_area..=1` and aspect ratio in `3/4..=4/3`, resized back to the
    /// original size (ImageNet).
    RandomResized {
        /// Smallest area fraction (0.08 in the usual recipe).
        min_area: f64,
    },
}

/// Augmentation and normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Crop for training.
    pub crop: Crop,
    /// Random horizontal flip for training.
    pub flip: bool,
    /// Per-channel mean (of pixels in `0..1`).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Transform {
    /// Writes one image (`u8`, `c x h x w`) into `out` (`f32`, same layout), augmented when `rng` is given.
    pub fn apply<R: Rng>(
        &self,
        image: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: Option<&mut R>,
        out: &mut [f32],
    ) {
        let plane = h * w;
        let source =
            |y: usize, x: usize, ch: usize| f32::from(image[ch * plane + y * w + x]) / 255.0;
        match rng {
            None => {
                for ch in 0..c {
                    for i in 0..plane {
                        out[ch * plane + i] =
                            (source(i / w, i % w, ch) - self.mean[ch]) / self.std[ch];
                    }
                }
            }
            Some(rng) => {
                let flip = self.flip && rng.random_bool(0.5);
                let sample = self.crop_sampler(h, w, rng);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let xx = if flip { w - 1 - x } else { x };
                            let v = sample(y, xx, &mut |sy, sx| source(sy, sx, ch));
                            out[ch * plane + y * w + x] = (v - self.mean[ch]) / self.std[ch];
                        }
                    }
                }
            }
        }
    }

    /// A function from output pixel `(y, x)` to its value, given a reader of source pixels.
    #[allow(clippy::type_complexity)]
    fn crop_sampler<R: Rng>(
        &self,
        h: usize,
        w: usize,
        rng: &mut R,
    ) -> Box<dyn Fn(usize, usize, &mut dyn FnMut(usize, usize) -> f32) -> f32> {
        match self.crop {
            Crop::None => Box::new(|y, x, src| src(y, x)),
            Crop::Pad { pad } => {
                let dy = rng.random_range(0..=2 * pad) as isize - pad as isize;
                let dx = rng.random_range(0..=2 * pad) as isize - pad as isize;
                Box::new(move |y, x, src| {
                    let (sy, sx) = (y as isize + dy, x as isize + dx);
                    if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                        0.0
                    } else {
                        src(sy as usize, sx as usize)
                    }
                })
            }
            Crop::RandomResized { min_area } => {
                let (ch, cw, top, left) = random_resized_box(h, w, min_area, rng);
                // Bilinear sampling of the box at the output's resolution.
                Box::new(move |y, x, src| {
                    let fy = top as f64 + (y as f64 + 0.5) * ch as f64 / h as f64 - 0.5;
                    let fx = left as f64 + (x as f64 + 0.5) * cw as f64 / w as f64 - 0.5;
                    let (y0, x0) = (fy.floor().max(0.0) as usize, fx.floor().max(0.0) as usize);
                    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                    let (ty, tx) = (
                        (fy - y0 as f64).clamp(0.0, 1.0) as f32,
                        (fx - x0 as f64).clamp(0.0, 1.0) as f32,
                    );
                    let top_row = src(y0, x0) * (1.0 - tx) + src(y0, x1) * tx;
                    let bottom = src(y1, x0) * (1.0 - tx) + src(y1, x1) * tx;
                    top_row * (1.0 - ty) + bottom * ty
                })
            }
        }
    }
}

/// `(height, width, top, left)` of a random box with area fraction in `min_area..=1` and aspect ratio in
/// `3/4..=4/3` (ten tries, then the whole image).
fn random_resized_box<R: Rng>(
    h: usize,
    w: usize,
    min_area: f64,
    rng: &mut R,
) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    for _ in 0..10 {
        let target = area * rng.random_range(min_area.clamp(0.01, 1.0)..=1.0);
        let log_ratio = rng.random_range((3f64 / 4.0).ln()..=(4f64 / 3.0).ln());
        let ratio = log_ratio.exp();
        let cw = (target * ratio).sqrt().round() as usize;
        let ch = (target / ratio).sqrt().round() as usize;
        if (1..=w).contains(&cw) && (1..=h).contains(&ch) {
            return (
                ch,
                cw,
                rng.random_range(0..=h - ch),
                rng.random_range(0..=w - cw),
            );
        }
    }
    (h, w, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn transform(crop: Crop, flip: bool) -> Transform {
        Transform {
            crop,
            flip,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    #[test]
    fn evaluation_only_normalises() {
        let t = Transform {
            mean: vec![0.5],
            std: vec![0.25],
            ..transform(Crop::None, true)
        };
        let mut out = [0f32; 4];
        t.apply::<rand_chacha::ChaCha8Rng>(&[0, 255, 0, 255], 1, 2, 2, None, &mut out);
        assert_eq!(out, [-2.0, 2.0, -2.0, 2.0]);
    }

    #[test]
    fn pad_crop_shifts_and_flip_mirrors() {
        let image: Vec<u8> = (0..16).map(|v| v * 10).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut out = [0f32; 16];
        let mut shifted = 0;
        for _ in 0..20 {
            transform(Crop::Pad { pad: 1 }, false).apply(&image, 1, 4, 4, Some(&mut rng), &mut out);
            // Every output pixel is either padding or a source pixel.
            assert!(out.iter().all(|v| *v == 0.0
                || image
                    .iter()
                    .any(|p| (f32::from(*p) / 255.0 - v).abs() < 1e-6)));
            shifted += usize::from(out[5] != f32::from(image[5]) / 255.0);
        }
        assert!(shifted > 0, "some crops move the image");
        let mut flipped = [0f32; 16];
        let mut flips = 0;
        for _ in 0..20 {
            transform(Crop::None, true).apply(&image, 1, 4, 4, Some(&mut rng), &mut flipped);
            flips += usize::from(flipped[0] == f32::from(image[3]) / 255.0);
        }
        assert!(
            (1..20).contains(&flips),
            "flips about half the time: {flips}"
        );
    }

    #[test]
    fn random_resized_boxes_fit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..200 {
            let (h, w, top, left) = random_resized_box(32, 24, 0.08, &mut rng);
            assert!(h >= 1 && w >= 1 && top + h <= 32 && left + w <= 24);
        }
    }
}
