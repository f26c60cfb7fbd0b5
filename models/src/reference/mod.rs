//! The hand-designed baselines of the paper's Table I, structurally identical to torchvision's definitions
//! (node names equal torchvision's state-dict keys, so its weights could be loaded by name).

mod mnasnet;
mod mobilenet_v2;
mod mobilenet_v3;
mod shufflenet_v2;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::graph::{Graph, GraphBuilder, Shape};

/// A reference network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// MobileNetV2 (width 1.0).
    MobilenetV2,
    /// ShuffleNetV2 x0.5.
    ShufflenetV2X0_5,
    /// ShuffleNetV2 x1.0.
    ShufflenetV2X1_0,
    /// ShuffleNetV2 x1.5.
    ShufflenetV2X1_5,
    /// ShuffleNetV2 x2.0.
    ShufflenetV2X2_0,
    /// MobileNetV3-Large.
    MobilenetV3Large,
    /// MNASNet 1.0.
    Mnasnet1_0,
}

impl Reference {
    /// Every reference network.
    pub const ALL: [Reference; 7] = [
        Reference::MobilenetV2,
        Reference::ShufflenetV2X0_5,
        Reference::ShufflenetV2X1_0,
        Reference::ShufflenetV2X1_5,
        Reference::ShufflenetV2X2_0,
        Reference::MobilenetV3Large,
        Reference::Mnasnet1_0,
    ];

    /// torchvision's name.
    pub fn name(self) -> &'static str {
        match self {
            Reference::MobilenetV2 => "mobilenet_v2",
            Reference::ShufflenetV2X0_5 => "shufflenet_v2_x0_5",
            Reference::ShufflenetV2X1_0 => "shufflenet_v2_x1_0",
            Reference::ShufflenetV2X1_5 => "shufflenet_v2_x1_5",
            Reference::ShufflenetV2X2_0 => "shufflenet_v2_x2_0",
            Reference::MobilenetV3Large => "mobilenet_v3_large",
            Reference::Mnasnet1_0 => "mnasnet1_0",
        }
    }

    /// The network for `input_size x input_size` RGB inputs and `classes` outputs.
    ///
    /// With `small_input_stem`, the first two stride-2 stages of downsampling at the input are removed (the
    /// usual CIFAR adaptation for 32x32 inputs: stem stride 1 and, for ShuffleNetV2, no max pooling).
    pub fn build(
        self,
        input_size: usize,
        classes: usize,
        small_input_stem: bool,
    ) -> Result<Graph, ModelError> {
        if !(8..=4096).contains(&input_size) || classes == 0 {
            return Err(ModelError::BadConfig(format!(
                "{}: input size {input_size} must be in 8..=4096 and the class count at least 1",
                self.name()
            )));
        }
        let stem_stride = if small_input_stem { 1 } else { 2 };
        let mut b = GraphBuilder::new(self.name(), Shape::new(3, input_size, input_size));
        match self {
            Reference::MobilenetV2 => mobilenet_v2::build(&mut b, classes, stem_stride),
            Reference::ShufflenetV2X0_5 => {
                shufflenet_v2::build(&mut b, classes, stem_stride, [24, 48, 96, 192, 1024])
            }
            Reference::ShufflenetV2X1_0 => {
                shufflenet_v2::build(&mut b, classes, stem_stride, [24, 116, 232, 464, 1024])
            }
            Reference::ShufflenetV2X1_5 => {
                shufflenet_v2::build(&mut b, classes, stem_stride, [24, 176, 352, 704, 1024])
            }
            Reference::ShufflenetV2X2_0 => {
                shufflenet_v2::build(&mut b, classes, stem_stride, [24, 244, 488, 976, 2048])
            }
            Reference::MobilenetV3Large => mobilenet_v3::build(&mut b, classes, stem_stride),
            Reference::Mnasnet1_0 => mnasnet::build(&mut b, classes, stem_stride),
        }
        Ok(b.finish())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reference {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| ModelError::UnknownReference {
                name: s.to_string(),
                known: Reference::ALL.map(Reference::name).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torchvision's parameter counts at 224x224 and 1000 classes.
    #[test]
    fn parameter_counts_match_torchvision() {
        let expected = [
            (Reference::MobilenetV2, 3_504_872),
            (Reference::ShufflenetV2X0_5, 1_366_792),
            (Reference::ShufflenetV2X1_0, 2_278_604),
            (Reference::ShufflenetV2X1_5, 3_503_624),
            (Reference::ShufflenetV2X2_0, 7_393_996),
            (Reference::MobilenetV3Large, 5_483_032),
            (Reference::Mnasnet1_0, 4_383_312),
        ];
        for (net, params) in expected {
            let g = net.build(224, 1000, false).expect("builds");
            assert_eq!(g.param_count(), params, "{net}");
            assert_eq!(g.output_shape(), Shape::new(1000, 1, 1), "{net}");
        }
    }

    /// Multiply-adds reported by the papers that introduced the networks (millions). Their counting
    /// conventions differ slightly (pooling, SE products), hence the 2% tolerance.
    #[test]
    fn macs_are_close_to_the_published_figures() {
        let expected = [
            (Reference::MobilenetV2, 300.0),
            (Reference::ShufflenetV2X0_5, 41.0),
            (Reference::ShufflenetV2X1_0, 146.0),
            (Reference::ShufflenetV2X1_5, 299.0),
            (Reference::ShufflenetV2X2_0, 591.0),
            (Reference::MobilenetV3Large, 219.0),
            (Reference::Mnasnet1_0, 315.0),
        ];
        for (net, mmacs) in expected {
            let g = net.build(224, 1000, false).expect("builds");
            let got = g.macs() as f64 / 1e6;
            assert!(
                (got - mmacs).abs() / mmacs < 0.02,
                "{net}: {got:.2} M MACs, published {mmacs} M"
            );
        }
    }

    #[test]
    fn names_parse_and_unknown_names_list_the_known_ones() {
        for r in Reference::ALL {
            assert_eq!(r.name().parse::<Reference>(), Ok(r));
        }
        let err = "resnet50"
            .parse::<Reference>()
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("resnet50") && err.contains("mnasnet1_0"),
            "{err}"
        );
    }

    #[test]
    fn small_input_stem_keeps_resolution() {
        let g = Reference::ShufflenetV2X1_0
            .build(32, 10, true)
            .expect("builds");
        assert_eq!(g.output_shape(), Shape::new(10, 1, 1));
        let before_pool = g
            .nodes
            .iter()
            .find(|n| n.name == "conv5.0")
            .expect("conv5")
            .shape;
        assert_eq!((before_pool.h, before_pool.w), (4, 4));
    }
}
