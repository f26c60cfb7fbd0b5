//! A seeded, stratified train/validation split carved from the training images (the search measures
//! accuracy on the validation part; the test split is kept for final reports).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::image_set::ImageSet;

/// Splits `set` into `(train, validation)` with `fraction` of every class in validation (at least one image
/// of a class with two or more), shuffled with `seed`. The same inputs give the same split.
pub fn train_val_split(set: &ImageSet, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::new();
    let mut val = Vec::new();
    for class in 0..set.classes.len() as u32 {
        let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == class).collect();
        idx.shuffle(&mut rng);
        let mut n_val = (idx.len() as f64 * fraction).round() as usize;
        if fraction > 0.0 && idx.len() >= 2 {
            n_val = n_val.clamp(1, idx.len() - 1);
        }
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (set.subset(&train), set.subset(&val))
}

/// Keeps at most `per_class` images of every class of `set`, chosen with `seed` (a class-balanced subset
/// for shorter trainings). Classes with fewer images keep all of them; image order is preserved. The same
/// inputs give the same subset.
pub fn per_class_subset(set: &ImageSet, per_class: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut keep = Vec::new();
    for class in 0..set.classes.len() as u32 {
        let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == class).collect();
        idx.shuffle(&mut rng);
        idx.truncate(per_class);
        keep.extend_from_slice(&idx);
    }
    keep.sort_unstable();
    set.subset(&keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_disjoint_and_reproducible() {
        let n = 40;
        let set = ImageSet {
            pixels: (0..n as u8).collect(),
            labels: (0..n as u32).map(|i| i % 4).collect(),
            classes: (0..4).map(|c| c.to_string()).collect(),
            channels: 1,
            height: 1,
            width: 1,
        };
        let (train, val) = train_val_split(&set, 0.2, 7);
        assert_eq!((train.len(), val.len()), (32, 8));
        assert_eq!(val.class_counts(), vec![2; 4]);
        let mut all: Vec<u8> = train.pixels.iter().chain(&val.pixels).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n as u8).collect::<Vec<_>>(),
            "disjoint and complete"
        );
        assert_eq!(train_val_split(&set, 0.2, 7).1, val);
        assert_ne!(train_val_split(&set, 0.2, 8).1.pixels, val.pixels);
    }

    #[test]
    fn per_class_subset_is_balanced_seeded_and_keeps_small_classes() {
        // Classes 0..3 have 10 images each, class 3 only 2.
        let labels: Vec<u32> = (0..30).map(|i| i % 3).chain([3, 3]).collect();
        let n = labels.len();
        let set = ImageSet {
            pixels: (0..n as u8).collect(),
            labels,
            classes: (0..4).map(|c| c.to_string()).collect(),
            channels: 1,
            height: 1,
            width: 1,
        };
        let sub = per_class_subset(&set, 4, 3);
        assert_eq!(sub.class_counts(), vec![4, 4, 4, 2]);
        for (pixel, label) in sub.pixels.iter().zip(&sub.labels) {
            assert_eq!(
                set.labels[*pixel as usize], *label,
                "labels follow their images"
            );
        }
        assert!(sub.pixels.windows(2).all(|w| w[0] < w[1]), "order kept");
        assert_eq!(per_class_subset(&set, 4, 3), sub);
        assert_ne!(per_class_subset(&set, 4, 4).pixels, sub.pixels);
        assert_eq!(per_class_subset(&set, 100, 3), set);
    }
}
