//! torchvision's `mobilenet_v2` (width multiplier 1.0).

use crate::graph::{Activation, Conv, GraphBuilder, Value};

/// `(expansion t, output channels c, repeats n, first stride s)` per stage.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

pub(super) fn build(b: &mut GraphBuilder, classes: usize, stem_stride: usize) {
    let mut x = conv_bn_relu6(b, "features.0", Value::INPUT, 32, 3, stem_stride, 1);
    let mut index = 1;
    for (t, c, n, s) in SETTINGS {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            x = inverted_residual(b, &format!("features.{index}"), x, c, stride, t);
            index += 1;
        }
    }
    x = conv_bn_relu6(b, &format!("features.{index}"), x, 1280, 1, 1, 1);
    let x = b.global_avg_pool("pool", x);
    b.linear("classifier.1", x, classes);
}

/// torchvision's `Conv2dNormActivation` with ReLU6: `<p>.0` conv, `<p>.1` BN, `<p>.2` ReLU6.
fn conv_bn_relu6(
    b: &mut GraphBuilder,
    p: &str,
    x: Value,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
) -> Value {
    let cin = b.shape(x).c;
    let y = b.conv_bn(
        p,
        0,
        x,
        Conv {
            cin,
            cout,
            kernel: k,
            stride,
            groups,
            bias: false,
        },
    );
    b.act(format!("{p}.2"), y, Activation::Relu6)
}

fn inverted_residual(
    b: &mut GraphBuilder,
    p: &str,
    x: Value,
    cout: usize,
    stride: usize,
    t: usize,
) -> Value {
    let cin = b.shape(x).c;
    let hidden = cin * t;
    let mut y = x;
    let mut i = 0;
    if t != 1 {
        y = conv_bn_relu6(b, &format!("{p}.conv.{i}"), y, hidden, 1, 1, 1);
        i += 1;
    }
    y = conv_bn_relu6(b, &format!("{p}.conv.{i}"), y, hidden, 3, stride, hidden);
    let y = b.conv_bn(
        &format!("{p}.conv"),
        i + 1,
        y,
        Conv {
            cin: hidden,
            cout,
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        },
    );
    if stride == 1 && cin == cout {
        b.add(format!("{p}.add"), x, y)
    } else {
        y
    }
}
