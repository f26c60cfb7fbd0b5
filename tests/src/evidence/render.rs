//! How a claim's value is printed: decimals, a scale, a sign, thousands grouped.

use std::fmt::Write as _;

use super::ValueSpec;

/// A JSON value printed as `spec` says.
pub fn render(value: &serde_json::Value, spec: &ValueSpec) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Number(n) => {
            let x = (n.as_f64().ok_or("not a finite number")? + spec.offset) * spec.scale;
            Ok(format_number(x, spec))
        }
        other => Err(format!("{other} is not a number or a string")),
    }
}

fn format_number(x: f64, spec: &ValueSpec) -> String {
    let mut text = match spec.decimals {
        Some(d) => format!("{x:.d$}"),
        None => x.to_string(),
    };
    if spec.thousands {
        text = group_thousands(&text);
    }
    if spec.sign && !text.starts_with('-') {
        text.insert(0, '+');
    }
    text
}

fn group_thousands(text: &str) -> String {
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text), |rest| ("-", rest));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut out = format!("{sign}{grouped}");
    if let Some(f) = frac {
        let _ = write!(out, ".{f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decimals: Option<usize>, scale: f64, sign: bool, thousands: bool) -> ValueSpec {
        ValueSpec {
            pointer: String::new(),
            file: None,
            decimals,
            offset: 0.0,
            scale,
            sign,
            thousands,
        }
    }

    #[test]
    fn numbers_print_as_the_spec_says() {
        let v = |x: f64| serde_json::json!(x);
        assert_eq!(
            render(&v(0.4526), &spec(Some(1), 100.0, false, false)),
            Ok("45.3".into())
        );
        assert_eq!(
            render(&v(0.011), &spec(Some(1), 100.0, true, false)),
            Ok("+1.1".into())
        );
        assert_eq!(
            render(&v(-0.005), &spec(Some(1), 100.0, true, false)),
            Ok("-0.5".into())
        );
        assert_eq!(
            render(&v(1234567.0), &spec(Some(0), 1.0, false, true)),
            Ok("1,234,567".into())
        );
        assert_eq!(
            render(&v(-1234.5), &spec(Some(1), 1.0, false, true)),
            Ok("-1,234.5".into())
        );
        assert_eq!(
            render(&serde_json::json!(818), &spec(None, 1.0, false, false)),
            Ok("818".into())
        );
        assert_eq!(
            render(
                &serde_json::json!("shuffle3:0.5"),
                &spec(None, 1.0, false, false)
            ),
            Ok("shuffle3:0.5".into())
        );
        assert!(render(&serde_json::json!([1]), &spec(None, 1.0, false, false)).is_err());
    }
}
