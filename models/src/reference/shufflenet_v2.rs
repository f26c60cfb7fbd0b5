//! torchvision's `shufflenet_v2_x*`: stride-1 units split channels in halves (`chunk(2)`), every unit ends
//! with a channel shuffle of 2 groups.

use crate::graph::{Activation, Conv, GraphBuilder, Value};

const REPEATS: [usize; 3] = [4, 8, 4];

pub(super) fn build(
    b: &mut GraphBuilder,
    classes: usize,
    stem_stride: usize,
    channels: [usize; 5],
) {
    let x = b.conv_bn(
        "conv1",
        0,
        Value::INPUT,
        Conv {
            cin: 3,
            cout: channels[0],
            kernel: 3,
            stride: stem_stride,
            groups: 1,
            bias: false,
        },
    );
    let mut x = b.act("conv1.2", x, Activation::Relu);
    if stem_stride == 2 {
        x = b.max_pool("maxpool", x, 3, 2);
    }
    for (stage, repeats) in REPEATS.into_iter().enumerate() {
        for i in 0..repeats {
            let stride = if i == 0 { 2 } else { 1 };
            x = unit(
                b,
                &format!("stage{}.{i}", stage + 2),
                x,
                channels[stage + 1],
                stride,
            );
        }
    }
    let y = b.conv_bn(
        "conv5",
        0,
        x,
        Conv {
            cin: channels[3],
            cout: channels[4],
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        },
    );
    let y = b.act("conv5.2", y, Activation::Relu);
    let y = b.global_avg_pool("pool", y);
    b.linear("fc", y, classes);
}

fn unit(b: &mut GraphBuilder, p: &str, x: Value, cout: usize, stride: usize) -> Value {
    let cin = b.shape(x).c;
    let half = cout / 2;
    let out = if stride == 1 {
        let x1 = b.slice_channels(format!("{p}.chunk0"), x, 0, cin / 2, 1);
        let x2 = b.slice_channels(format!("{p}.chunk1"), x, cin / 2, cin, 1);
        let y = branch2(b, p, x2, half, 1);
        b.concat(format!("{p}.cat"), &[x1, y])
    } else {
        let dw = Conv {
            cin,
            cout: cin,
            kernel: 3,
            stride,
            groups: cin,
            bias: false,
        };
        let y1 = b.conv_bn(&format!("{p}.branch1"), 0, x, dw);
        let y1 = b.conv_bn(
            &format!("{p}.branch1"),
            2,
            y1,
            Conv {
                cin,
                cout: half,
                kernel: 1,
                stride: 1,
                groups: 1,
                bias: false,
            },
        );
        let y1 = b.act(format!("{p}.branch1.4"), y1, Activation::Relu);
        let y2 = branch2(b, p, x, half, stride);
        b.concat(format!("{p}.cat"), &[y1, y2])
    };
    b.channel_shuffle(format!("{p}.shuffle"), out, 2)
}

fn branch2(b: &mut GraphBuilder, p: &str, x: Value, half: usize, stride: usize) -> Value {
    let m = format!("{p}.branch2");
    let cin = b.shape(x).c;
    let y = b.conv_bn(
        &m,
        0,
        x,
        Conv {
            cin,
            cout: half,
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        },
    );
    let y = b.act(format!("{m}.2"), y, Activation::Relu);
    let y = b.conv_bn(
        &m,
        3,
        y,
        Conv {
            cin: half,
            cout: half,
            kernel: 3,
            stride,
            groups: half,
            bias: false,
        },
    );
    let y = b.conv_bn(
        &m,
        5,
        y,
        Conv {
            cin: half,
            cout: half,
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        },
    );
    b.act(format!("{m}.7"), y, Activation::Relu)
}
