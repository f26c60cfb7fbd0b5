//! The fixed input of a generated crate's golden test (see [`crate::snippets`]).

include!("snippets/golden_input.rs");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_input_is_deterministic_and_bounded() {
        let x = golden_input(4);
        assert_eq!(x.len(), 48);
        assert_eq!(x, golden_input(4));
        assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(x[0], -1.0);
        assert!((x[1] - (7919 % 2001) as f32 / 1000.0 + 1.0).abs() < 1e-6);
    }
}
