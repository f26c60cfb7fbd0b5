//! Every dataset format read from real files (PNG and JPEG folders, a `.tar.gz`, CIFAR-10 binary batches,
//! MNIST IDX, gzipped or not), and the clear errors for what cannot be used.

use std::io::Write;
use std::path::Path;

use hsconas_data::{open, ReadOptions};

fn write_image(path: &Path, w: u32, h: u32, value: u8) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 255 - value]))
        .save(path)
        .expect("writes the image");
}

fn error_of(path: &Path, options: ReadOptions) -> String {
    match open(path, options) {
        Ok(_) => panic!("{} should be refused", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn image_folders_with_splits_from_a_directory_and_a_tar_gz() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("set");
    for (split, n) in [("train", 3), ("test", 1)] {
        for (c, class) in ["cat", "ant"].iter().enumerate() {
            for i in 0..n {
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                write_image(
                    &root.join(format!("{split}/{class}/{i}.{ext}")),
                    8,
                    8,
                    (40 * c + i) as u8,
                );
            }
        }
    }
    let splits = open(&root, ReadOptions::default()).expect("reads the folder");
    assert_eq!(
        splits.train.classes,
        vec!["ant", "cat"],
        "classes sorted by name"
    );
    assert_eq!(splits.train.len(), 6);
    assert_eq!(splits.train.class_counts(), vec![3, 3]);
    assert_eq!(
        (
            splits.train.channels,
            splits.train.height,
            splits.train.width
        ),
        (3, 8, 8)
    );
    assert_eq!(splits.test.as_ref().map(|t| t.len()), Some(2));
    // The PNG pixels come back exactly, channel-major: "ant" (written second) image 0 is (40, 20, 215).
    let first = splits.train.image(0);
    assert!(first[..64].iter().all(|&v| v == 40), "red plane");
    assert!(first[64..128].iter().all(|&v| v == 20), "green plane");
    assert!(first[128..].iter().all(|&v| v == 215), "blue plane");

    // The same tree as a .tar.gz.
    let tgz = dir.path().join("set.tar.gz");
    let file = std::fs::File::create(&tgz).expect("create");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    builder.append_dir_all(".", &root).expect("archive");
    builder
        .into_inner()
        .expect("finish")
        .finish()
        .expect("gzip");
    let from_tgz = open(&tgz, ReadOptions::default()).expect("reads the archive");
    assert_eq!(from_tgz.train, splits.train);
    assert_eq!(from_tgz.format, "ImageFolder (tar.gz)");

    // A truncated archive is a clear error.
    let bytes = std::fs::read(&tgz).expect("read");
    let cut = dir.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    assert!(error_of(&cut, ReadOptions::default()).contains("corrupt or truncated"));
}

#[test]
fn empty_classes_bad_images_and_mixed_sizes_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("flat");
    write_image(&root.join("a/0.png"), 8, 8, 1);
    std::fs::create_dir_all(root.join("b")).expect("empty class");
    assert!(error_of(&root, ReadOptions::default()).contains("class 'b' has no images"));

    write_image(&root.join("b/0.png"), 8, 8, 2);
    std::fs::write(root.join("b/1.jpg"), b"not a jpeg").expect("write");
    let err = error_of(&root, ReadOptions::default());
    assert!(
        err.contains("cannot decode") && err.contains("1.jpg"),
        "{err}"
    );

    std::fs::remove_file(root.join("b/1.jpg")).expect("remove");
    write_image(&root.join("b/2.png"), 12, 10, 3);
    let err = error_of(&root, ReadOptions::default());
    assert!(err.contains("12x10") && err.contains("resize"), "{err}");
    let resized = open(&root, ReadOptions { resize: Some(8) }).expect("resized");
    assert_eq!((resized.train.len(), resized.train.height), (3, 8));
    assert!(error_of(&dir.path().join("missing"), ReadOptions::default()).contains("no dataset"));
}

#[test]
fn cifar10_binary_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = |label: u8, value: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(value, 3072));
        r
    };
    let train: Vec<u8> = (0..4).flat_map(|i| record(i, i * 10)).collect();
    std::fs::write(dir.path().join("data_batch_1.bin"), &train).expect("write");
    std::fs::write(dir.path().join("test_batch.bin"), record(9, 7)).expect("write");
    let splits = open(dir.path(), ReadOptions::default()).expect("reads CIFAR");
    assert_eq!(splits.train.labels, vec![0, 1, 2, 3]);
    assert_eq!(splits.train.classes[9], "truck");
    assert_eq!(splits.train.image(2)[0], 20);
    assert_eq!(splits.test.map(|t| t.labels), Some(vec![9]));
    std::fs::write(dir.path().join("data_batch_1.bin"), &train[..5000]).expect("truncate");
    assert!(error_of(dir.path(), ReadOptions::default()).contains("truncated"));
}

#[test]
fn mnist_idx_files_plain_and_gzipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let idx = |dims: &[u32], data: &[u8]| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    };
    let images: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx(&[3, 28, 28], &images),
    )
    .expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&idx(&[3], &[5, 0, 9])).expect("gzip");
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    let splits = open(dir.path(), ReadOptions::default()).expect("reads MNIST");
    assert_eq!(
        (
            splits.train.len(),
            splits.train.channels,
            splits.train.height
        ),
        (3, 1, 28)
    );
    assert_eq!(splits.train.labels, vec![5, 0, 9]);
    assert!(splits.test.is_none());
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx(&[3, 28, 28], &images[..100]),
    )
    .expect("write");
    assert!(error_of(dir.path(), ReadOptions::default()).contains("truncated"));
}

#[test]
fn linked_class_folders_are_read_and_a_link_loop_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let elsewhere = dir.path().join("elsewhere/dog");
    write_image(&elsewhere.join("0.png"), 4, 4, 10);
    write_image(&elsewhere.join("1.png"), 4, 4, 20);
    let root = dir.path().join("set");
    write_image(&root.join("cat/0.png"), 4, 4, 30);
    write_image(&root.join("cat/1.png"), 4, 4, 40);
    std::os::unix::fs::symlink(&elsewhere, root.join("dog")).expect("symlink");
    let splits = open(&root, ReadOptions::default()).expect("reads the linked class");
    assert_eq!(splits.train.classes, vec!["cat", "dog"]);
    assert_eq!(splits.train.class_counts(), vec![2, 2]);
    // A link back to an ancestor would make the walk endless.
    std::os::unix::fs::symlink(&root, root.join("cat/again")).expect("symlink");
    let err = error_of(&root, ReadOptions::default());
    assert!(err.contains("loop"), "{err}");
}
