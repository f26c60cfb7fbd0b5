//! Decoded images in memory: one contiguous `u8` buffer in `N x C x H x W` order, labels, class names.

use serde::Serialize;

/// A set of equally sized images with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Pixels, `len() * channels * height * width` bytes, channel-major per image.
    pub pixels: Vec<u8>,
    /// One label per image, `< classes.len()`.
    pub labels: Vec<u32>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Channels per image (3 for colour, 1 for MNIST).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// Per-class counts and per-channel statistics, for `hsconas data inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Images.
    pub images: usize,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// `(class, images)` in label order.
    pub per_class: Vec<(String, usize)>,
    /// Per-channel mean of the pixels scaled to `0..1`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the pixels scaled to `0..1`.
    pub std: Vec<f32>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_bytes(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_bytes());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// Images per class, in label order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Per-channel mean and standard deviation of the pixels scaled to `0..1` (the normalisation the
    /// training pipeline uses).
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut sq = vec![0f64; self.channels];
        for img in self.pixels.chunks_exact(self.image_bytes().max(1)) {
            for (c, chan) in img.chunks_exact(plane).enumerate() {
                for &p in chan {
                    let v = f64::from(p) / 255.0;
                    sum[c] += v;
                    sq[c] += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt() as f32).max(1e-6))
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// Counts and statistics.
    pub fn summary(&self) -> Summary {
        let (mean, std) = self.channel_stats();
        Summary {
            images: self.len(),
            shape: [self.channels, self.height, self.width],
            per_class: self
                .classes
                .iter()
                .cloned()
                .zip(self.class_counts())
                .collect(),
            mean,
            std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ImageSet {
        // Two 1x2x2 images: all zeros, all 255.
        ImageSet {
            pixels: vec![0, 0, 0, 0, 255, 255, 255, 255],
            labels: vec![1, 0],
            classes: vec!["a".into(), "b".into()],
            channels: 1,
            height: 2,
            width: 2,
        }
    }

    #[test]
    fn subsets_counts_and_statistics() {
        let set = tiny();
        assert_eq!(set.image(1), &[255; 4]);
        let swapped = set.subset(&[1, 0]);
        assert_eq!(swapped.labels, vec![0, 1]);
        assert_eq!(swapped.image(0), &[255; 4]);
        assert_eq!(set.class_counts(), vec![1, 1]);
        let (mean, std) = set.channel_stats();
        assert!((mean[0] - 0.5).abs() < 1e-6 && (std[0] - 0.5).abs() < 1e-6);
    }
}
