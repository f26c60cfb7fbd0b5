//! Reading datasets from disk: ImageFolder trees (a directory or a `.tar.gz`), CIFAR-10 binary batches and
//! MNIST IDX files. Everything is decoded once into an [`ImageSet`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::image_set::ImageSet;
use super::DataError;

/// The splits found at a path. `test` is `None` when the source has no test split.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images (the validation split is carved from these).
    pub train: ImageSet,
    /// Test images, for final reports only.
    pub test: Option<ImageSet>,
    /// What was read, e.g. `ImageFolder (tar.gz)`.
    pub format: &'static str,
}

/// How to read images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Resize every image to `S x S` (needed when an ImageFolder holds mixed sizes).
    pub resize: Option<usize>,
}

/// Opens a dataset, detecting its format:
/// - a directory or `.tar.gz` with `train/<class>/*` (and optionally `test/<class>/*`): ImageFolder splits;
/// - a directory or `.tar.gz` with `<class>/*` directly: an ImageFolder used as the training split;
/// - a directory with `data_batch_1.bin` .. and `test_batch.bin` (or a `cifar-10-batches-bin` folder): CIFAR-10;
/// - a directory with `train-images-idx3-ubyte[.gz]` and its labels (and the `t10k-` test files): MNIST.
pub fn open(path: &Path, options: ReadOptions) -> Result<Splits, DataError> {
    if !path.exists() {
        return Err(DataError::NotFound(path.into()));
    }
    let name = path.to_string_lossy();
    if path.is_file() && (name.ends_with(".tar.gz") || name.ends_with(".tgz")) {
        let files = read_tar_gz(path)?;
        return image_folder(path, files, options, "ImageFolder (tar.gz)");
    }
    if !path.is_dir() {
        return Err(DataError::Format {
            path: path.into(),
            message: "expected a directory or a .tar.gz archive".into(),
        });
    }
    let cifar = if path.join("cifar-10-batches-bin").is_dir() {
        path.join("cifar-10-batches-bin")
    } else {
        path.to_path_buf()
    };
    if cifar.join("data_batch_1.bin").is_file() {
        return cifar10(&cifar);
    }
    if idx_path(path, "train-images-idx3-ubyte").is_some() {
        return mnist(path);
    }
    let files = read_dir_files(path)?;
    image_folder(path, files, options, "ImageFolder (directory)")
}

/// Every regular file under `root`, as `(relative path with '/', bytes)`, and every folder as
/// `(relative path ending in '/', [])` (so that empty class folders are seen). Symbolic links are
/// followed (class folders may link elsewhere); a link that loops back is an error, not an endless walk.
fn read_dir_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            let message = e.to_string();
            match e.into_io_error() {
                Some(source) => DataError::io(&path, source),
                None => DataError::Format { path, message },
            }
        })?;
        let p = entry.path();
        let rel = p
            .strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/");
        if entry.file_type().is_dir() {
            files.push((format!("{rel}/"), Vec::new()));
        } else if entry.file_type().is_file() {
            let bytes = std::fs::read(p).map_err(|e| DataError::io(p, e))?;
            files.push((rel, bytes));
        }
    }
    Ok(files)
}

/// Every regular file in a `.tar.gz`, as `(path without a leading ./, bytes)`, and every folder as
/// `(path ending in '/', [])`.
fn read_tar_gz(path: &Path) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let corrupt = |e: std::io::Error| DataError::Format {
        path: path.into(),
        message: format!("corrupt or truncated archive: {e}"),
    };
    let mut files = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if !kind.is_dir() && !kind.is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if kind.is_dir() {
            let dir = if name.ends_with('/') {
                name
            } else {
                format!("{name}/")
            };
            files.push((dir, Vec::new()));
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(corrupt)?;
        files.push((name, bytes));
    }
    Ok(files)
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Files of each class: `class -> [(path, bytes)]`.
type ClassFiles = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// Groups image files into splits and classes and decodes them.
fn image_folder(
    origin: &Path,
    files: Vec<(String, Vec<u8>)>,
    options: ReadOptions,
    format: &'static str,
) -> Result<Splits, DataError> {
    // split -> class -> files; split "" when the classes sit at the top.
    let mut tree: BTreeMap<String, ClassFiles> = BTreeMap::new();
    let has_splits = files.iter().any(|(n, _)| n.starts_with("train/"));
    for (name, bytes) in files {
        if let Some(dir) = name.strip_suffix('/') {
            // A class folder, possibly empty.
            match (has_splits, dir.split('/').collect::<Vec<_>>().as_slice()) {
                (true, [split, class]) if *split == "train" || *split == "test" => {
                    tree.entry(split.to_string())
                        .or_default()
                        .entry(class.to_string())
                        .or_default();
                }
                (false, [class]) => {
                    tree.entry(String::new())
                        .or_default()
                        .entry(class.to_string())
                        .or_default();
                }
                _ => {}
            }
            continue;
        }
        if !is_image(&name) {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let (split, class) = match (has_splits, parts.as_slice()) {
            (true, [split, class, _file]) if *split == "train" || *split == "test" => {
                (split.to_string(), class.to_string())
            }
            (false, [class, _file]) => (String::new(), class.to_string()),
            _ => continue,
        };
        tree.entry(split)
            .or_default()
            .entry(class)
            .or_default()
            .push((name, bytes));
    }
    let train_key = if has_splits { "train" } else { "" };
    let Some(train) = tree.remove(train_key) else {
        return Err(DataError::Format {
            path: origin.into(),
            message: "no images found: expected <class>/<image>.jpg|png, or train/<class>/.. and test/<class>/..".into(),
        });
    };
    let classes: Vec<String> = train.keys().cloned().collect();
    let train = decode_classes(origin, &classes, train, options)?;
    let test = match tree.remove("test") {
        Some(test) => {
            if let Some(extra) = test.keys().find(|c| !classes.contains(c)) {
                return Err(DataError::Format {
                    path: origin.into(),
                    message: format!("test class '{extra}' does not exist in train/"),
                });
            }
            Some(decode_classes(origin, &classes, test, options)?)
        }
        None => None,
    };
    if let Some(t) = &test {
        if (t.channels, t.height, t.width) != (train.channels, train.height, train.width) {
            return Err(DataError::Format {
                path: origin.into(),
                message: format!(
                    "train images are {}x{} but test images are {}x{}; pass a resize setting",
                    train.width, train.height, t.width, t.height
                ),
            });
        }
    }
    Ok(Splits {
        train,
        test,
        format,
    })
}

/// Decodes the files of each class (labels by position in `classes`), on every core.
fn decode_classes(
    origin: &Path,
    classes: &[String],
    by_class: ClassFiles,
    options: ReadOptions,
) -> Result<ImageSet, DataError> {
    let mut jobs: Vec<(u32, String, Vec<u8>)> = Vec::new();
    for (class, files) in by_class {
        let label = classes.iter().position(|c| *c == class).unwrap_or_default() as u32;
        for (name, bytes) in files {
            jobs.push((label, name, bytes));
        }
    }
    if let Some(empty) = classes
        .iter()
        .enumerate()
        .find(|(i, _)| !jobs.iter().any(|(l, _, _)| *l as usize == *i))
    {
        return Err(DataError::Format {
            path: origin.into(),
            message: format!("class '{}' has no images", empty.1),
        });
    }
    jobs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    let decoded: Vec<Result<Vec<(u32, image::RgbImage)>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(label, name, bytes)| {
                            let img =
                                image::load_from_memory(bytes).map_err(|e| DataError::Image {
                                    path: origin.join(name),
                                    message: e.to_string(),
                                })?;
                            let mut rgb = img.to_rgb8();
                            if let Some(s) = options.resize {
                                if rgb.width() as usize != s || rgb.height() as usize != s {
                                    rgb = image::imageops::resize(
                                        &rgb,
                                        s as u32,
                                        s as u32,
                                        image::imageops::FilterType::Triangle,
                                    );
                                }
                            }
                            Ok((*label, rgb))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(DataError::Format {
                        path: origin.into(),
                        message: "an image decoder thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut images = Vec::with_capacity(jobs.len());
    for part in decoded {
        images.extend(part?);
    }
    let (w, h) = images[0].1.dimensions();
    let mut pixels = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    let mut labels = Vec::with_capacity(images.len());
    for (i, (label, img)) in images.iter().enumerate() {
        if img.dimensions() != (w, h) {
            return Err(DataError::Format {
                path: origin.join(&jobs[i].1),
                message: format!(
                    "is {}x{} but earlier images are {w}x{h}; pass a resize setting to use mixed sizes",
                    img.width(),
                    img.height()
                ),
            });
        }
        for c in 0..3 {
            pixels.extend(img.pixels().map(|p| p.0[c]));
        }
        labels.push(*label);
    }
    Ok(ImageSet {
        pixels,
        labels,
        classes: classes.to_vec(),
        channels: 3,
        height: h as usize,
        width: w as usize,
    })
}

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-10 binary batches: records of one label byte and 3,072 pixel bytes (R, G, B planes of 32x32).
fn cifar10(dir: &Path) -> Result<Splits, DataError> {
    let read = |files: &[PathBuf]| -> Result<ImageSet, DataError> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| DataError::io(f, e))?;
            if bytes.len() % 3073 != 0 {
                return Err(DataError::Format {
                    path: f.clone(),
                    message: format!(
                        "{} bytes is not a whole number of 3,073-byte records (truncated?)",
                        bytes.len()
                    ),
                });
            }
            for record in bytes.chunks_exact(3073) {
                if record[0] >= 10 {
                    return Err(DataError::Format {
                        path: f.clone(),
                        message: format!("label {} outside 0..10", record[0]),
                    });
                }
                labels.push(u32::from(record[0]));
                pixels.extend_from_slice(&record[1..]);
            }
        }
        Ok(ImageSet {
            pixels,
            labels,
            classes: CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect(),
            channels: 3,
            height: 32,
            width: 32,
        })
    };
    let train: Vec<PathBuf> = (1..=5)
        .map(|i| dir.join(format!("data_batch_{i}.bin")))
        .filter(|p| p.is_file())
        .collect();
    let test = dir.join("test_batch.bin");
    Ok(Splits {
        train: read(&train)?,
        test: if test.is_file() {
            Some(read(&[test])?)
        } else {
            None
        },
        format: "CIFAR-10 binary",
    })
}

fn idx_path(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Reads an IDX file (optionally gzipped): returns the dimensions and the data bytes.
fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                path: path.into(),
                message: format!("corrupt gzip: {e}"),
            })?;
        out
    } else {
        raw
    };
    let bad = |message: String| DataError::Format {
        path: path.into(),
        message,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad("not an IDX file of unsigned bytes".into()));
    }
    let dims = usize::from(bytes[3]);
    if dims != expected_dims || bytes.len() < 4 + 4 * dims {
        return Err(bad(format!(
            "expected {expected_dims} dimensions, found {dims}"
        )));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let data = bytes[4 + 4 * dims..].to_vec();
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad(format!(
            "{} data bytes for shape {shape:?} (truncated?)",
            data.len()
        )));
    }
    Ok((shape, data))
}

/// MNIST: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` and the `t10k-` test pair (`.gz` or not).
fn mnist(dir: &Path) -> Result<Splits, DataError> {
    let read = |images: &str, labels: &str| -> Result<Option<ImageSet>, DataError> {
        let (Some(ip), Some(lp)) = (idx_path(dir, images), idx_path(dir, labels)) else {
            return Ok(None);
        };
        let (shape, pixels) = read_idx(&ip, 3)?;
        let (lshape, labels) = read_idx(&lp, 1)?;
        if lshape[0] != shape[0] {
            return Err(DataError::Format {
                path: lp,
                message: format!("{} labels for {} images", lshape[0], shape[0]),
            });
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= 10) {
            return Err(DataError::Format {
                path: lp,
                message: format!("label {bad} outside 0..10"),
            });
        }
        Ok(Some(ImageSet {
            pixels,
            labels: labels.into_iter().map(u32::from).collect(),
            classes: (0..10).map(|d| d.to_string()).collect(),
            channels: 1,
            height: shape[1],
            width: shape[2],
        }))
    };
    let train = read("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?.ok_or_else(|| {
        DataError::Format {
            path: dir.into(),
            message: "train-labels-idx1-ubyte is missing".into(),
        }
    })?;
    Ok(Splits {
        train,
        test: read("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
        format: "MNIST IDX",
    })
}
