//! torchvision's `mnasnet1_0`.

use crate::graph::{Activation, Conv, GraphBuilder, Value};

/// `(output channels, kernel, first stride, expansion, repeats)` per stack (layers 8..=13).
const STACKS: [(usize, usize, usize, usize, usize); 6] = [
    (24, 3, 2, 3, 3),
    (40, 5, 2, 3, 3),
    (80, 5, 2, 6, 3),
    (96, 3, 1, 6, 2),
    (192, 5, 2, 6, 4),
    (320, 3, 1, 6, 1),
];

pub(super) fn build(b: &mut GraphBuilder, classes: usize, stem_stride: usize) {
    let conv = |cin, cout, kernel, stride, groups| Conv {
        cin,
        cout,
        kernel,
        stride,
        groups,
        bias: false,
    };
    let x = b.conv_bn("layers", 0, Value::INPUT, conv(3, 32, 3, stem_stride, 1));
    let x = b.act("layers.2", x, Activation::Relu);
    let x = b.conv_bn("layers", 3, x, conv(32, 32, 3, 1, 32));
    let x = b.act("layers.5", x, Activation::Relu);
    let mut x = b.conv_bn("layers", 6, x, conv(32, 16, 1, 1, 1));
    for (s, (cout, k, stride, t, repeats)) in STACKS.into_iter().enumerate() {
        for i in 0..repeats {
            let p = format!("layers.{}.{i}.layers", s + 8);
            x = inverted_residual(b, &p, x, cout, k, if i == 0 { stride } else { 1 }, t);
        }
    }
    let cin = b.shape(x).c;
    let x = b.conv_bn("layers", 14, x, conv(cin, 1280, 1, 1, 1));
    let x = b.act("layers.16", x, Activation::Relu);
    let x = b.global_avg_pool("pool", x);
    b.linear("classifier.1", x, classes);
}

fn inverted_residual(
    b: &mut GraphBuilder,
    p: &str,
    x: Value,
    cout: usize,
    k: usize,
    stride: usize,
    t: usize,
) -> Value {
    let cin = b.shape(x).c;
    let mid = cin * t;
    let y = b.conv_bn(
        p,
        0,
        x,
        Conv {
            cin,
            cout: mid,
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        },
    );
    let y = b.act(format!("{p}.2"), y, Activation::Relu);
    let y = b.conv_bn(
        p,
        3,
        y,
        Conv {
            cin: mid,
            cout: mid,
            kernel: k,
            stride,
            groups: mid,
            bias: false,
        },
    );
    let y = b.act(format!("{p}.5"), y, Activation::Relu);
    let y = b.conv_bn(
        p,
        6,
        y,
        Conv {
            cin: mid,
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
