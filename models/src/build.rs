//! Builds the layer graph of an architecture of the search space (docs/DESIGN.md section 2), whole or as one
//! profiling piece (the stem, the head, or a single choice block at the exact input shape it sees).

use serde::Serialize;

use hsconas_vocabulary::Precision;

use crate::arch::{check_layer, parse_choice, Arch};
use crate::error::ModelError;
use crate::graph::{Activation, Conv, Graph, GraphBuilder, Shape, Value};
use crate::layout::{NetConfig, HEAD_WIDTH, NUM_LAYERS, STEM_WIDTH};
use crate::op::{Choice, Op};

/// One profiling piece of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Piece {
    /// The stem convolution.
    Stem,
    /// One choice block: 0-based layer, its choice and the precision it runs in.
    Block {
        /// 0-based layer.
        layer: usize,
        /// The layer's choice.
        choice: Choice,
        /// FP32, or INT8 (quantised at the block's entry, dequantised at its exit); never INT8 for `skip`.
        precision: Precision,
    },
    /// Head convolution, pooling and classifier.
    Head,
}

impl Piece {
    /// An FP32 block.
    pub fn block(layer: usize, choice: Choice) -> Piece {
        Piece::Block {
            layer,
            choice,
            precision: Precision::Fp32,
        }
    }

    /// The latency-table key: `stem`, `head` or `L<l>:<op>:<scale>` with a 1-based layer (`L3:skip`), and
    /// `@int8` after an INT8 block (`L12:shuffle5:1.0@int8`).
    pub fn key(&self) -> String {
        match self {
            Piece::Stem => "stem".into(),
            Piece::Head => "head".into(),
            Piece::Block {
                layer,
                choice,
                precision: Precision::Fp32,
            } => format!("L{}:{choice}", layer + 1),
            Piece::Block {
                layer,
                choice,
                precision,
            } => format!("L{}:{choice}@{precision}", layer + 1),
        }
    }

    /// The piece's shape: pieces of one shape are twins, the same computation on the same input. The
    /// layers of a stage after its first all take the stage's width at the stage's resolution, so
    /// their pieces with one choice and precision differ only in their weights' values and names
    /// (`stage2:rest:shuffle5:0.5`, `@int8` appended for INT8); a stage's first layer, the stem and
    /// the head are shapes of their own. 326 FP32 shapes among the space's 818 pieces.
    pub fn shape(&self) -> String {
        match self {
            Piece::Stem | Piece::Head => self.key(),
            Piece::Block {
                layer,
                choice,
                precision,
            } => {
                let stage = NetConfig::stage_of(*layer) + 1;
                let position = if NetConfig::is_stride2(*layer) {
                    "first"
                } else {
                    "rest"
                };
                match precision {
                    Precision::Fp32 => format!("stage{stage}:{position}:{choice}"),
                    precision => format!("stage{stage}:{position}:{choice}@{precision}"),
                }
            }
        }
    }

    /// The precision the piece runs in (the stem and the head are FP32).
    pub fn precision(&self) -> Precision {
        match self {
            Piece::Block { precision, .. } => *precision,
            Piece::Stem | Piece::Head => Precision::Fp32,
        }
    }

    /// The same piece in FP32 (what an INT8 piece is compared with).
    pub fn as_fp32(&self) -> Piece {
        match *self {
            Piece::Block { layer, choice, .. } => Piece::block(layer, choice),
            other => other,
        }
    }
}

impl std::str::FromStr for Piece {
    type Err = ModelError;

    /// The inverse of [`Piece::key`]: `stem`, `head` or `L<layer>:<op>:<scale>[@int8]` (1-based layer,
    /// e.g. `L3:shuffle5:0.5`, `L2:skip`, `L12:shuffle5:1.0@int8`). The layer's rules apply (no `skip` in a
    /// stride-2 layer, no INT8 `skip`).
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| ModelError::BadPiece {
            key: key.to_string(),
            reason,
        };
        match key.trim() {
            "stem" => return Ok(Piece::Stem),
            "head" => return Ok(Piece::Head),
            _ => {}
        }
        let expected =
            || bad("expected stem, head or L<layer>:<op>:<scale> such as L3:shuffle5:0.5".into());
        let rest = key.trim().strip_prefix('L').ok_or_else(expected)?;
        let (layer, choice) = rest.split_once(':').ok_or_else(expected)?;
        let layer: usize = layer.parse().map_err(|_| expected())?;
        if !(1..=NUM_LAYERS).contains(&layer) {
            return Err(bad(format!("layer {layer} is outside 1..=20")));
        }
        let (choice, precision) =
            parse_choice(layer - 1, choice).map_err(|e| bad(format!("{e}")))?;
        Ok(Piece::Block {
            layer: layer - 1,
            choice,
            precision,
        })
    }
}

/// Per-sample input shape of the 0-based layer (its geometry does not depend on the choices).
pub fn layer_input_shape(config: &NetConfig, layer: usize) -> Shape {
    let mut hw = config.input_size.div_ceil(config.stem_stride());
    for l in 1..=layer {
        if NetConfig::is_stride2(l - 1) {
            hw = hw.div_ceil(2);
        }
    }
    Shape::new(config.layer_in_channels(layer), hw, hw)
}

/// Per-sample input shape of the head.
pub fn head_input_shape(config: &NetConfig) -> Shape {
    let last = layer_input_shape(config, NUM_LAYERS - 1);
    Shape::new(config.layout.widths()[3], last.h, last.w)
}

/// The module path of a 0-based layer's nodes (`layers.<layer>`): every node of the layer is named
/// `layers.<layer>.<...>` (what per-layer INT8 export selects).
pub fn layer_module(layer: usize) -> String {
    format!("layers.{layer}")
}

/// The whole network of `arch`.
pub fn network(arch: &Arch, config: &NetConfig) -> Result<Graph, ModelError> {
    config.validate()?;
    let s = config.input_size;
    let mut b = GraphBuilder::new("hsconas", Shape::new(3, s, s));
    let mut x = stem(&mut b, config);
    for (layer, choice) in arch.choices().iter().enumerate() {
        x = block(&mut b, config, layer, *choice, x);
    }
    head(&mut b, config, x);
    Ok(b.finish())
}

/// One profiling piece at the input shape it has inside the network.
pub fn piece(piece: Piece, config: &NetConfig) -> Result<Graph, ModelError> {
    config.validate()?;
    let graph = match piece {
        Piece::Stem => {
            let s = config.input_size;
            let mut b = GraphBuilder::new("stem", Shape::new(3, s, s));
            stem(&mut b, config);
            b.finish()
        }
        Piece::Head => {
            let mut b = GraphBuilder::new("head", head_input_shape(config));
            head(&mut b, config, Value::INPUT);
            b.finish()
        }
        Piece::Block { layer, choice, .. } => {
            if layer >= NUM_LAYERS {
                return Err(ModelError::LayerOutOfRange(layer));
            }
            check_layer(layer, choice)?;
            let mut b = GraphBuilder::new(piece.key(), layer_input_shape(config, layer));
            block(&mut b, config, layer, choice, Value::INPUT);
            b.finish()
        }
    };
    Ok(graph)
}

/// Every distinct profiling piece of the full search space: the stem, each layer's choices, the head.
pub fn all_pieces() -> Vec<Piece> {
    let mut pieces = vec![Piece::Stem];
    for layer in 0..NUM_LAYERS {
        let space = crate::space::LayerSpace::full(layer);
        pieces.extend(
            space
                .choices()
                .into_iter()
                .map(|choice| Piece::block(layer, choice)),
        );
    }
    pieces.push(Piece::Head);
    pieces
}

/// What a mixed-precision latency table measures: [`all_pieces`] with the INT8 twin of every block that
/// has weights (every choice but `skip`) right after its FP32 piece, so that the two are measured in the
/// same group, side by side.
pub fn mixed_pieces() -> Vec<Piece> {
    let mut pieces = Vec::new();
    for piece in all_pieces() {
        pieces.push(piece);
        if let Piece::Block { layer, choice, .. } = piece {
            if !choice.is_skip() {
                pieces.push(Piece::Block {
                    layer,
                    choice,
                    precision: Precision::Int8,
                });
            }
        }
    }
    pieces
}

/// The pieces of one architecture, in network order: the stem, each layer's block in its precision, the head.
pub fn arch_pieces(arch: &Arch) -> Vec<Piece> {
    let mut pieces = vec![Piece::Stem];
    pieces.extend(
        arch.choices()
            .iter()
            .zip(arch.precisions())
            .enumerate()
            .map(|(layer, (&choice, &precision))| Piece::Block {
                layer,
                choice,
                precision,
            }),
    );
    pieces.push(Piece::Head);
    pieces
}

fn stem(b: &mut GraphBuilder, config: &NetConfig) -> Value {
    let x = b.conv_plain(
        "stem.conv",
        Value::INPUT,
        STEM_WIDTH,
        3,
        config.stem_stride(),
    );
    let x = b.bn("stem.bn", x);
    b.act("stem.relu", x, Activation::Relu)
}

fn head(b: &mut GraphBuilder, config: &NetConfig, x: Value) -> Value {
    let x = b.conv_plain("head.conv", x, HEAD_WIDTH, 1, 1);
    let x = b.bn("head.bn", x);
    let x = b.act("head.relu", x, Activation::Relu);
    let x = b.global_avg_pool("head.pool", x);
    b.linear("head.fc", x, config.classes)
}

fn block(
    b: &mut GraphBuilder,
    config: &NetConfig,
    layer: usize,
    choice: Choice,
    x: Value,
) -> Value {
    if choice.is_skip() {
        return x;
    }
    let p = layer_module(layer);
    let width = config.layer_width(layer);
    let mid = choice.scale().mid_channels(width);
    let cin = b.shape(x).c;
    if NetConfig::is_stride2(layer) {
        let k = choice.op().kernel();
        let proj = {
            let y = b.conv_dw(format!("{p}.proj.0"), x, k, 2);
            let y = b.bn(format!("{p}.proj.1"), y);
            let y = b.conv_plain(format!("{p}.proj.2"), y, cin, 1, 1);
            let y = b.bn(format!("{p}.proj.3"), y);
            b.act(format!("{p}.proj.4"), y, Activation::Relu)
        };
        let main = main_branch(b, &p, choice.op(), x, mid, width - cin, 2);
        b.concat(format!("{p}.cat"), &[proj, main])
    } else {
        let passed = b.slice_channels(format!("{p}.pass"), x, 0, cin, 2);
        let odd = b.slice_channels(format!("{p}.split"), x, 1, cin, 2);
        let main = main_branch(b, &p, choice.op(), odd, mid, cin / 2, 1);
        b.concat(format!("{p}.cat"), &[passed, main])
    }
}

/// The main branch `<p>.main.<i>` of a choice block (PyTorch `nn.Sequential` numbering).
fn main_branch(
    b: &mut GraphBuilder,
    p: &str,
    op: Op,
    x: Value,
    mid: usize,
    out: usize,
    stride: usize,
) -> Value {
    let m = format!("{p}.main");
    let name = |i: usize| format!("{m}.{i}");
    let cin = b.shape(x).c;
    let dw = |c: usize, k: usize, s: usize| Conv {
        cin: c,
        cout: c,
        kernel: k,
        stride: s,
        groups: c,
        bias: false,
    };
    let pw = |i: usize, o: usize| Conv {
        cin: i,
        cout: o,
        kernel: 1,
        stride: 1,
        groups: 1,
        bias: false,
    };
    match op {
        Op::Xception => {
            let y = b.conv_bn(&m, 0, x, dw(cin, 3, stride));
            let y = b.conv_bn(&m, 2, y, pw(cin, mid));
            let y = b.act(name(4), y, Activation::Relu);
            let y = b.conv_bn(&m, 5, y, dw(mid, 3, 1));
            let y = b.conv_bn(&m, 7, y, pw(mid, mid));
            let y = b.act(name(9), y, Activation::Relu);
            let y = b.conv_bn(&m, 10, y, dw(mid, 3, 1));
            let y = b.conv_bn(&m, 12, y, pw(mid, out));
            b.act(name(14), y, Activation::Relu)
        }
        _ => {
            let y = b.conv_bn(&m, 0, x, pw(cin, mid));
            let y = b.act(name(2), y, Activation::Relu);
            let y = b.conv_bn(&m, 3, y, dw(mid, op.kernel(), stride));
            let y = b.conv_bn(&m, 5, y, pw(mid, out));
            b.act(name(7), y, Activation::Relu)
        }
    }
}

/// Parameters and MACs of one part of a network, for `arch info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartCount {
    /// `stem`, `L1` .. `L20`, `head`.
    pub part: String,
    /// The layer's choice (`None` for stem and head).
    pub choice: Option<String>,
    /// Input shape `[C, H, W]`.
    pub input: [usize; 3],
    /// Stride.
    pub stride: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Multiply-accumulates per sample.
    pub macs: usize,
}

/// Per-part parameter and MAC counts of `arch`; they add up to the whole network's.
pub fn part_counts(arch: &Arch, config: &NetConfig) -> Result<Vec<PartCount>, ModelError> {
    let graph = network(arch, config)?;
    let shape = |s: Shape| [s.c, s.h, s.w];
    let mut parts = Vec::with_capacity(NUM_LAYERS + 2);
    let (params, macs) = graph.count_under("stem");
    let input = Shape::new(3, config.input_size, config.input_size);
    parts.push(PartCount {
        part: "stem".into(),
        choice: None,
        input: shape(input),
        stride: config.stem_stride(),
        params,
        macs,
    });
    for (layer, choice) in arch.choices().iter().enumerate() {
        let (params, macs) = graph.count_under(&layer_module(layer));
        parts.push(PartCount {
            part: format!("L{}", layer + 1),
            choice: Some(choice.to_string()),
            input: shape(layer_input_shape(config, layer)),
            stride: if NetConfig::is_stride2(layer) { 2 } else { 1 },
            params,
            macs,
        });
    }
    let (params, macs) = graph.count_under("head");
    parts.push(PartCount {
        part: "head".into(),
        choice: None,
        input: shape(head_input_shape(config)),
        stride: 1,
        params,
        macs,
    });
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::op::Scale;

    fn counts(text: &str, layout: Layout, input_size: usize, classes: usize) -> (usize, usize) {
        let arch = Arch::uniform(
            text.split(':')
                .next()
                .and_then(|o| o.parse().ok())
                .expect("op"),
            text.split(':')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("scale"),
        )
        .expect("valid");
        let g = network(
            &arch,
            &NetConfig {
                layout,
                input_size,
                classes,
            },
        )
        .expect("builds");
        (g.param_count(), g.macs())
    }

    /// The test vectors of docs/DESIGN.md section 2.
    #[test]
    fn design_test_vectors() {
        assert_eq!(
            counts("shuffle3:1.0", Layout::A, 224, 1000),
            (2_501_960, 196_384_256)
        );
        assert_eq!(
            counts("shuffle3:1.0", Layout::B, 224, 1000),
            (3_337_200, 323_968_496)
        );
        assert_eq!(
            counts("shuffle3:1.0", Layout::A, 32, 10),
            (1_487_210, 15_958_016)
        );
        assert_eq!(
            counts("xception:0.5", Layout::A, 224, 1000),
            (2_219_168, 128_759_552)
        );
        assert_eq!(
            counts("xception:0.5", Layout::B, 224, 1000),
            (2_838_918, 203_517_872)
        );
        assert_eq!(
            counts("xception:0.5", Layout::A, 32, 10),
            (1_204_418, 10_437_632)
        );
    }

    #[test]
    fn parts_add_up_and_pieces_match_the_network() {
        let mut arch =
            Arch::uniform(Op::Shuffle7, Scale::from_tenths(3).expect("0.3")).expect("valid");
        arch = arch.with_layer(6, Choice::SKIP).expect("stride 1");
        let config = NetConfig::default();
        let net = network(&arch, &config).expect("builds");
        let parts = part_counts(&arch, &config).expect("counts");
        assert_eq!(parts.len(), 22);
        assert_eq!(
            parts.iter().map(|p| p.params).sum::<usize>(),
            net.param_count()
        );
        assert_eq!(parts.iter().map(|p| p.macs).sum::<usize>(), net.macs());
        assert_eq!(parts[7].params, 0, "skip has no parameters");
        for (layer, choice) in arch.choices().iter().enumerate() {
            let g = piece(Piece::block(layer, *choice), &config).expect("piece");
            assert_eq!(g.param_count(), parts[layer + 1].params, "layer {layer}");
            assert_eq!(g.macs(), parts[layer + 1].macs, "layer {layer}");
        }
        let head = piece(Piece::Head, &config).expect("head");
        assert_eq!(head.input, Shape::new(512, 7, 7));
        assert_eq!(head.output_shape(), Shape::new(1000, 1, 1));
    }

    #[test]
    fn piece_keys_parse_back() {
        for p in all_pieces() {
            assert_eq!(p.key().parse::<Piece>().expect("parses"), p);
        }
        for (bad, needle) in [
            ("L21:skip", "outside 1..=20"),
            ("L0:skip", "outside"),
            ("x", "expected"),
            ("L3:conv:0.5", "unknown operator"),
            ("L5:skip", "stride-2"),
        ] {
            let err = bad.parse::<Piece>().expect_err(bad).to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn piece_keys_and_the_piece_list() {
        let pieces = all_pieces();
        assert_eq!(pieces.len(), 2 + 4 * 40 + 16 * 41);
        assert_eq!(pieces[1].key(), "L1:shuffle3:0.1");
        assert!(pieces.iter().any(|p| p.key() == "L2:skip"));
        for p in &pieces {
            assert_eq!(p.key().parse::<Piece>().expect("parses"), *p);
        }
        let mixed = mixed_pieces();
        let int8: Vec<&Piece> = mixed
            .iter()
            .filter(|p| p.precision() == Precision::Int8)
            .collect();
        assert_eq!(int8.len(), pieces.len() - 2 - 16, "every block but skip");
        assert_eq!(mixed.len(), pieces.len() + int8.len());
        assert_eq!(
            (mixed[1].key(), mixed[2].key()),
            (
                "L1:shuffle3:0.1".to_string(),
                "L1:shuffle3:0.1@int8".to_string()
            ),
            "each INT8 piece right after its FP32 twin"
        );
        for p in int8 {
            assert_eq!(p.key().parse::<Piece>().expect("parses"), *p);
            assert_eq!(p.precision(), Precision::Int8);
            assert!(pieces.contains(&p.as_fp32()));
        }
        for (key, why) in [
            ("L2:skip@int8", "has no weights"),
            ("L3:shuffle3:0.5@int4", "is not a precision"),
            ("L3:shuffle3:0.5@fp16", "TensorRT chooses FP16"),
        ] {
            let err = key.parse::<Piece>().expect_err(key).to_string();
            assert!(err.contains(why), "{key}: {err}");
        }
        assert_eq!(
            "L3:shuffle3:0.5@fp32".parse::<Piece>().expect("fp32").key(),
            "L3:shuffle3:0.5"
        );
        let bad = piece(Piece::block(4, Choice::SKIP), &NetConfig::default());
        assert!(bad
            .expect_err("skip in stride 2")
            .to_string()
            .contains("layer 5"));
    }

    #[test]
    fn input_shapes_follow_the_strides() {
        let c = NetConfig::default();
        assert_eq!(layer_input_shape(&c, 0), Shape::new(16, 112, 112));
        assert_eq!(layer_input_shape(&c, 1), Shape::new(48, 56, 56));
        assert_eq!(layer_input_shape(&c, 19), Shape::new(512, 7, 7));
        let small = NetConfig {
            input_size: 32,
            classes: 10,
            ..c
        };
        assert_eq!(layer_input_shape(&small, 0), Shape::new(16, 32, 32));
        assert_eq!(head_input_shape(&small), Shape::new(512, 2, 2));
    }
}
