//! The predictor built into the binary is what fitting the committed ground truth produces: refitting
//! `docs/evidence/ground-truth/ground-truth.json` (every trained network, its mean test top-1, the
//! predictor's features at the model's configuration) gives the committed `predictor-model.json` that the
//! build embeds. A ground truth refreshed without refitting, or a model edited by hand, fails here.

use hsconas_models::build;
use hsconas_nas::ground_truth::GroundTruth;
use hsconas_nas::predictor::{self, Predictor};
use hsconas_tests::repo_root;

#[test]
fn the_built_in_predictor_is_a_fresh_fit_of_the_committed_ground_truth() {
    let built_in = Predictor::built_in().expect("the built-in predictor");
    let truth =
        GroundTruth::load(&repo_root().join("docs/evidence/ground-truth/ground-truth.json"))
            .expect("the committed ground truth");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for n in truth.trained() {
        let graph = build::network(&n.arch, &built_in.config).expect("a network of the space");
        x.push(predictor::features(
            &n.arch,
            graph.macs(),
            graph.param_count(),
        ));
        y.push(n.test_top1().expect("a trained network has a test top-1"));
    }
    let fresh = Predictor::fit(&x, &y, built_in.config).expect("the fit");
    assert_eq!(fresh.networks, built_in.networks, "networks fitted");
    assert_eq!(fresh.features, built_in.features);
    assert_eq!(
        fresh.ridge.strength, built_in.ridge.strength,
        "ridge strength"
    );
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(p, q)| (p - q).abs() <= 1e-9 * q.abs().max(1.0))
    };
    for (what, fresh, committed) in [
        ("mean", &fresh.ridge.mean, &built_in.ridge.mean),
        ("scale", &fresh.ridge.scale, &built_in.ridge.scale),
        ("weights", &fresh.ridge.weights, &built_in.ridge.weights),
        (
            "intercept",
            &vec![fresh.ridge.intercept],
            &vec![built_in.ridge.intercept],
        ),
    ] {
        assert!(
            close(fresh, committed),
            "{what}: fresh {fresh:?}, built in {committed:?}"
        );
    }
    // Its recorded error (a constraint search's default tie margin) is the nested leave-one-out one.
    let held_out = predictor::held_out_predictions(&x, &y).expect("held out");
    let rmse = (held_out
        .iter()
        .zip(&y)
        .map(|(p, v)| (p - v).powi(2))
        .sum::<f64>()
        / y.len() as f64)
        .sqrt();
    let recorded = built_in
        .held_out_rmse
        .expect("the built-in predictor records its error");
    assert!(
        (recorded - rmse).abs() < 1e-9,
        "recorded {recorded}, fresh {rmse}"
    );
}
