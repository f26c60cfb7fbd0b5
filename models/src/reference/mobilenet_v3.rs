//! torchvision's `mobilenet_v3_large` (BN epsilon 0.001, squeeze-excitation with hard-sigmoid gates).

use crate::graph::{Activation, Conv, GraphBuilder, Value};

const BN_EPS: f32 = 1e-3;

/// `(kernel, expanded channels, output channels, squeeze-excitation, activation, stride)` per block.
const BLOCKS: [(usize, usize, usize, bool, Activation, usize); 15] = {
    use Activation::{HardSwish as HS, Relu as RE};
    [
        (3, 16, 16, false, RE, 1),
        (3, 64, 24, false, RE, 2),
        (3, 72, 24, false, RE, 1),
        (5, 72, 40, true, RE, 2),
        (5, 120, 40, true, RE, 1),
        (5, 120, 40, true, RE, 1),
        (3, 240, 80, false, HS, 2),
        (3, 200, 80, false, HS, 1),
        (3, 184, 80, false, HS, 1),
        (3, 184, 80, false, HS, 1),
        (3, 480, 112, true, HS, 1),
        (3, 672, 112, true, HS, 1),
        (5, 672, 160, true, HS, 2),
        (5, 960, 160, true, HS, 1),
        (5, 960, 160, true, HS, 1),
    ]
};

/// torchvision's `_make_divisible(v, 8)`.
fn make_divisible(v: usize) -> usize {
    let rounded = ((v + 4) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v as f64 {
        rounded + 8
    } else {
        rounded
    }
}

pub(super) fn build(b: &mut GraphBuilder, classes: usize, stem_stride: usize) {
    let mut x = conv_bn_act(
        b,
        "features.0",
        Value::INPUT,
        16,
        3,
        stem_stride,
        1,
        Some(Activation::HardSwish),
    );
    for (i, (k, expanded, cout, se, act, stride)) in BLOCKS.into_iter().enumerate() {
        x = inverted_residual(
            b,
            &format!("features.{}", i + 1),
            x,
            k,
            expanded,
            cout,
            se,
            act,
            stride,
        );
    }
    let x = conv_bn_act(
        b,
        "features.16",
        x,
        960,
        1,
        1,
        1,
        Some(Activation::HardSwish),
    );
    let x = b.global_avg_pool("avgpool", x);
    let x = b.linear("classifier.0", x, 1280);
    let x = b.act("classifier.1", x, Activation::HardSwish);
    b.linear("classifier.3", x, classes);
}

/// `Conv2dNormActivation`: `<p>.0` conv, `<p>.1` BN, `<p>.2` activation (if any).
#[allow(clippy::too_many_arguments)]
fn conv_bn_act(
    b: &mut GraphBuilder,
    p: &str,
    x: Value,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    act: Option<Activation>,
) -> Value {
    let cin = b.shape(x).c;
    let y = b.conv(
        format!("{p}.0"),
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
    let y = b.bn_eps(format!("{p}.1"), y, BN_EPS);
    match act {
        Some(a) => b.act(format!("{p}.2"), y, a),
        None => y,
    }
}

#[allow(clippy::too_many_arguments)]
fn inverted_residual(
    b: &mut GraphBuilder,
    p: &str,
    x: Value,
    k: usize,
    expanded: usize,
    cout: usize,
    se: bool,
    act: Activation,
    stride: usize,
) -> Value {
    let cin = b.shape(x).c;
    let mut i = 0;
    let mut y = x;
    if expanded != cin {
        y = conv_bn_act(
            b,
            &format!("{p}.block.{i}"),
            y,
            expanded,
            1,
            1,
            1,
            Some(act),
        );
        i += 1;
    }
    y = conv_bn_act(
        b,
        &format!("{p}.block.{i}"),
        y,
        expanded,
        k,
        stride,
        expanded,
        Some(act),
    );
    i += 1;
    if se {
        let s = format!("{p}.block.{i}");
        let squeeze = make_divisible(expanded / 4);
        let g = b.global_avg_pool(format!("{s}.avgpool"), y);
        let g = b.conv(
            format!("{s}.fc1"),
            g,
            Conv {
                cin: expanded,
                cout: squeeze,
                kernel: 1,
                stride: 1,
                groups: 1,
                bias: true,
            },
        );
        let g = b.act(format!("{s}.relu"), g, Activation::Relu);
        let g = b.conv(
            format!("{s}.fc2"),
            g,
            Conv {
                cin: squeeze,
                cout: expanded,
                kernel: 1,
                stride: 1,
                groups: 1,
                bias: true,
            },
        );
        let g = b.act(format!("{s}.hardsigmoid"), g, Activation::HardSigmoid);
        y = b.mul(format!("{s}.scale"), y, g);
        i += 1;
    }
    let y = conv_bn_act(b, &format!("{p}.block.{i}"), y, cout, 1, 1, 1, None);
    if stride == 1 && cin == cout {
        b.add(format!("{p}.add"), x, y)
    } else {
        y
    }
}
