//! SGD with momentum, weight decay on weights only (not on batch-norm parameters and biases, unless asked),
//! and gradient-norm clipping, with state that a checkpoint can hold (PyTorch's update rule:
//! `g += wd * p; buf = m * buf + g; p -= lr * buf`).
//!
//! Gradients are computed per step (never accumulated), so a tensor off this step's path has no gradient
//! and is left alone, momentum included, as with PyTorch's `zero_grad(set_to_none=True)`. That is what a
//! supernet needs, and it makes a resumed run step exactly like an uninterrupted one.

use std::collections::BTreeMap;

use tch::{nn, Tensor};

use crate::collective::{mean_over_ranks, Collective, SingleProcess};

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdSettings {
    /// Momentum (0.9).
    pub momentum: f64,
    /// Weight decay (3e-5).
    pub weight_decay: f64,
    /// Also decay one-dimensional tensors (batch-norm scales and shifts, biases).
    pub decay_norms_and_biases: bool,
    /// Clip the global gradient norm to this (5); 0 disables.
    pub clip_norm: f64,
}

impl Default for SgdSettings {
    fn default() -> Self {
        SgdSettings {
            momentum: 0.9,
            weight_decay: 3e-5,
            decay_norms_and_biases: false,
            clip_norm: 5.0,
        }
    }
}

/// The optimiser: trainable tensors by name and their momentum buffers.
pub struct Sgd {
    settings: SgdSettings,
    params: Vec<(String, Tensor)>,
    buffers: BTreeMap<String, Tensor>,
    communication: Communication,
}

/// What the gradient averaging of data-parallel steps cost, summed since the last
/// [`Sgd::take_communication`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Communication {
    /// Steps whose gradients were averaged over the ranks.
    pub steps: u64,
    /// Gradient values all-reduced (32-bit floats), all those steps together.
    pub floats: u64,
    /// Wall time of flattening, all-reducing and unflattening the gradients, seconds.
    pub seconds: f64,
}

impl Sgd {
    /// Every trainable tensor of `vs`.
    pub fn new(vs: &nn::VarStore, settings: SgdSettings) -> Sgd {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Sgd {
            settings,
            params,
            buffers: BTreeMap::new(),
            communication: Communication::default(),
        }
    }

    /// Backpropagates `loss`, clips the gradients (global norm) and applies one update with learning rate
    /// `lr`. Returns the gradient norm before clipping. Tensors the loss does not depend on are untouched.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> f64 {
        self.backward_step_averaged(loss, lr, &SingleProcess)
    }

    /// [`Sgd::backward_step`] in a data-parallel job: the gradients are averaged over the ranks of
    /// `collective` (one all-reduce of one flat buffer) before clipping and the update, so that every rank
    /// applies the same update. Every rank must have the same tensors without a gradient (the same path).
    pub fn backward_step_averaged(
        &mut self,
        loss: &Tensor,
        lr: f64,
        collective: &dyn Collective,
    ) -> f64 {
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let mut grads = Tensor::run_backward(&[loss], &inputs, false, false);
        if collective.size() > 1 {
            let start = std::time::Instant::now();
            let floats = average_over_ranks(&mut grads, collective);
            self.communication.steps += 1;
            self.communication.floats += floats as u64;
            self.communication.seconds += start.elapsed().as_secs_f64();
        }
        let s = &self.settings;
        tch::no_grad(|| {
            let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
            let norm = if defined.is_empty() {
                0.0
            } else {
                let squares: Vec<Tensor> = defined
                    .iter()
                    .map(|g| g.square().sum(tch::Kind::Float))
                    .collect();
                f64::try_from(Tensor::stack(&squares, 0).sum(tch::Kind::Float).sqrt())
                    .unwrap_or(f64::NAN)
            };
            let clip = if s.clip_norm > 0.0 && norm > s.clip_norm {
                s.clip_norm / (norm + 1e-6)
            } else {
                1.0
            };
            for ((name, p), g) in self.params.iter_mut().zip(&grads) {
                if !g.defined() {
                    continue;
                }
                let mut d = g * clip;
                let decay = s.decay_norms_and_biases || p.dim() > 1;
                if decay && s.weight_decay > 0.0 {
                    d += &*p * s.weight_decay;
                }
                let update = match self.buffers.get_mut(name) {
                    Some(buf) => {
                        let _ = buf.g_mul_scalar_(s.momentum).g_add_(&d);
                        buf.shallow_clone()
                    }
                    None => {
                        let buf = d.copy();
                        self.buffers.insert(name.clone(), buf.shallow_clone());
                        buf
                    }
                };
                let _ = p.g_sub_(&(update * lr));
            }
            norm
        })
    }

    /// The cost of gradient averaging since the last call, and a fresh count.
    pub fn take_communication(&mut self) -> Communication {
        std::mem::take(&mut self.communication)
    }

    /// The momentum buffers, by parameter name (for checkpoints).
    pub fn buffers(&self) -> &BTreeMap<String, Tensor> {
        &self.buffers
    }

    /// Restores momentum buffers from a checkpoint.
    pub fn set_buffers(&mut self, buffers: BTreeMap<String, Tensor>) {
        self.buffers = buffers;
    }
}

/// Replaces each defined gradient by its mean over the ranks (one all-reduce of one flat buffer, in
/// parameter order). Returns the buffer's length.
fn average_over_ranks(grads: &mut [Tensor], collective: &dyn Collective) -> usize {
    let defined: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].defined()).collect();
    let tensors: Vec<&Tensor> = defined.iter().map(|&i| &grads[i]).collect();
    let (means, floats) = mean_over_ranks(&tensors, collective);
    for (i, mean) in defined.into_iter().zip(means) {
        grads[i] = mean;
    }
    floats
}

/// Cosine learning rate with linear warm-up: step `s` of `total`.
pub fn cosine_lr(base: f64, step: u64, total: u64, warmup: u64) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    0.5 * base * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((cosine_lr(0.1, 0, 100, 10) - 0.01).abs() < 1e-12);
        assert!((cosine_lr(0.1, 9, 100, 10) - 0.1).abs() < 1e-12);
        assert!((cosine_lr(0.1, 10, 100, 10) - 0.1).abs() < 1e-12);
        assert!(cosine_lr(0.1, 100, 100, 10).abs() < 1e-12);
        assert!((cosine_lr(0.1, 55, 100, 10) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn matches_pytorch_sgd_on_a_quadratic() {
        // torch.optim.SGD's rule by hand: g = grad + wd * w; buf = g on the first step, then
        // buf = momentum * buf + g; w -= lr * buf.
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1f32, 2.0]).view([1, 2]));
        let unused = vs.root().var_copy("unused", &Tensor::from_slice(&[3f32]));
        let mut opt = Sgd::new(
            &vs,
            SgdSettings {
                momentum: 0.9,
                weight_decay: 0.01,
                decay_norms_and_biases: false,
                clip_norm: 0.0,
            },
        );
        for _ in 0..2 {
            opt.backward_step(&w.square().sum(Kind::Float), 0.1);
        }
        assert_eq!(
            f32::try_from(&unused).expect("scalar"),
            3.0,
            "no gradient, no update"
        );
        let mut expected = [1f64, 2.0];
        let mut buf = [0f64; 2];
        for step in 0..2 {
            for i in 0..2 {
                let g = 2.0 * expected[i] + 0.01 * expected[i];
                buf[i] = if step == 0 { g } else { 0.9 * buf[i] + g };
                expected[i] -= 0.1 * buf[i];
            }
        }
        let got = Vec::<f32>::try_from(w.view([-1])).expect("f32");
        for i in 0..2 {
            assert!(
                (f64::from(got[i]) - expected[i]).abs() < 1e-5,
                "{got:?} vs {expected:?}"
            );
        }
    }

    fn plain(weight_decay: f64, decay_norms_and_biases: bool, clip_norm: f64) -> SgdSettings {
        SgdSettings {
            momentum: 0.0,
            weight_decay,
            decay_norms_and_biases,
            clip_norm,
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.view([-1])).expect("f32")
    }

    #[test]
    fn clips_the_global_gradient_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[0f32, 0.0]).view([1, 2]));
        let k = Tensor::from_slice(&[30f32, 40.0]).view([1, 2]);
        // Gradient (30, 40): norm 50, scaled to norm 5.
        let mut clipped = Sgd::new(&vs, plain(0.0, false, 5.0));
        let norm = clipped.backward_step(&(&w * &k).sum(Kind::Float), 1.0);
        assert!((norm - 50.0).abs() < 1e-4, "{norm}");
        let got = values(&w);
        assert!(
            (got[0] + 3.0).abs() < 1e-4 && (got[1] + 4.0).abs() < 1e-4,
            "{got:?}"
        );
        // Under the limit, or with clipping off, the gradient is applied as it is.
        let mut unclipped = Sgd::new(&vs, plain(0.0, false, 0.0));
        unclipped.backward_step(&(&w * &k).sum(Kind::Float), 0.01);
        let after = values(&w);
        assert!(
            (after[0] + 3.3).abs() < 1e-4 && (after[1] + 4.4).abs() < 1e-4,
            "{after:?}"
        );
    }

    #[test]
    fn weight_decay_spares_norms_and_biases_unless_asked() {
        for decay_all in [false, true] {
            let vs = nn::VarStore::new(Device::Cpu);
            let weight = vs
                .root()
                .var_copy("weight", &Tensor::from_slice(&[2f32, 4.0]).view([2, 1]));
            let bias = vs
                .root()
                .var_copy("bias", &Tensor::from_slice(&[2f32, 4.0]));
            let mut opt = Sgd::new(&vs, plain(0.5, decay_all, 0.0));
            // A loss both depend on with zero gradient: only the decay moves them.
            let loss = (weight.sum(Kind::Float) + bias.sum(Kind::Float)) * 0.0;
            opt.backward_step(&loss, 1.0);
            assert_eq!(values(&weight), [1.0, 2.0], "weights always decay");
            let expected_bias = if decay_all { [1.0, 2.0] } else { [2.0, 4.0] };
            assert_eq!(
                values(&bias),
                expected_bias,
                "decay_norms_and_biases = {decay_all}"
            );
        }
    }
}
