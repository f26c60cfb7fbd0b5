//! Measurement settings as URL query parameters (shared by the server and the client).

use serde::{Deserialize, Serialize};

use crate::backend::BackendConfig;
use hsconas_vocabulary::{Engine, ExecutionProvider, Protocol};

/// Backend, protocol and batch of one remote measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureSettings {
    /// Backend settings (the TensorRT cache folder is the agent's own choice and ignored here).
    pub engine: BackendConfig,
    /// Timing protocol (pinning is the agent's choice and ignored here).
    pub protocol: Protocol,
    /// Batch size for symbolic batch dimensions.
    pub batch: usize,
}

impl Default for MeasureSettings {
    fn default() -> Self {
        MeasureSettings {
            engine: BackendConfig::default(),
            protocol: Protocol::default(),
            batch: 1,
        }
    }
}

impl MeasureSettings {
    /// `backend=ort&provider=cpu&threads=1&...`.
    pub fn to_query(&self) -> String {
        let providers: Vec<String> = self
            .engine
            .providers
            .iter()
            .map(ToString::to_string)
            .collect();
        let p = &self.protocol;
        let trt = &self.engine.tensorrt;
        let workspace = trt
            .workspace_mib
            .map(|mib| format!("&trt_workspace_mib={mib}"))
            .unwrap_or_default();
        let last_burst = p
            .last_burst
            .map(|b| format!("&last_burst={b}"))
            .unwrap_or_default();
        let last_alone = if p.last_alone { "&last_alone=true" } else { "" };
        // Sent only when set, so that the queries of earlier clients and agents stay as they were.
        let trt_int8 = if trt.int8 { "&trt_int8=true" } else { "" };
        let x64 = if self.engine.x64_quant_precision {
            "&x64_quant_precision=true"
        } else {
            ""
        };
        format!(
            "backend={}&provider={}&threads={}&optimize={}&trt_fp16={}{trt_int8}{workspace}{x64}&placement={}&warmup={}&runs={}&min_time_ms={}&max_runs={}&seed={}&batch={}&burst={}{last_burst}{last_alone}",
            self.engine.kind,
            providers.join(","),
            self.engine.threads,
            self.engine.optimize,
            trt.fp16,
            self.engine.placement,
            p.warmup,
            p.min_runs,
            p.min_time_ms,
            p.max_runs,
            p.seed,
            self.batch,
            p.burst
        )
    }

    /// Parses a query string (percent-decoded); unknown keys and malformed values are errors that name the
    /// key.
    pub fn from_query(query: &str) -> Result<MeasureSettings, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| format!("malformed query string: {e}"))?;
        MeasureSettings::from_pairs(&pairs)
    }

    /// The settings from decoded `key=value` pairs (as the agent's query extractor gives them); unknown
    /// keys and malformed values are errors that name the key.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<MeasureSettings, String> {
        let mut s = MeasureSettings::default();
        for (key, value) in pairs {
            let (key, value) = (key.as_str(), value.as_str());
            let bad = |what: &str| format!("query parameter '{key}': {what} (got '{value}')");
            let int = || {
                value
                    .parse::<usize>()
                    .map_err(|_| bad("expected a whole number"))
            };
            match key {
                "backend" => {
                    s.engine.kind = value.parse::<Engine>().map_err(|e| bad(&e.to_string()))?
                }
                "provider" => {
                    s.engine.providers = value
                        .split(',')
                        .map(|v| {
                            v.parse::<ExecutionProvider>()
                                .map_err(|e| bad(&e.to_string()))
                        })
                        .collect::<Result<_, _>>()?
                }
                "threads" => s.engine.threads = int()?,
                "optimize" => {
                    s.engine.optimize = value.parse().map_err(|_| bad("expected true or false"))?
                }
                "trt_fp16" => {
                    s.engine.tensorrt.fp16 =
                        value.parse().map_err(|_| bad("expected true or false"))?
                }
                "trt_int8" => {
                    s.engine.tensorrt.int8 =
                        value.parse().map_err(|_| bad("expected true or false"))?
                }
                "x64_quant_precision" => {
                    s.engine.x64_quant_precision =
                        value.parse().map_err(|_| bad("expected true or false"))?
                }
                "trt_workspace_mib" => s.engine.tensorrt.workspace_mib = Some(int()?),
                "placement" => {
                    s.engine.placement = value.parse().map_err(|_| bad("expected true or false"))?
                }
                "warmup" => s.protocol.warmup = int()?,
                "runs" => s.protocol.min_runs = int()?,
                "min_time_ms" => {
                    s.protocol.min_time_ms = value.parse().map_err(|_| bad("expected a number"))?
                }
                "max_runs" => s.protocol.max_runs = int()?,
                "seed" => {
                    s.protocol.seed = value.parse().map_err(|_| bad("expected a whole number"))?
                }
                "batch" => s.batch = int()?,
                "burst" => s.protocol.burst = int()?,
                "last_burst" => s.protocol.last_burst = Some(int()?),
                "last_alone" => {
                    s.protocol.last_alone =
                        value.parse().map_err(|_| bad("expected true or false"))?
                }
                _ => return Err(format!("unknown query parameter '{key}'")),
            }
        }
        if s.batch == 0
            || s.engine.threads == 0
            || s.protocol.burst == 0
            || s.protocol.last_burst == Some(0)
        {
            return Err("batch, threads, burst and last_burst must be at least 1".into());
        }
        s.protocol.max_runs = s.protocol.max_runs.max(s.protocol.min_runs);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip_and_errors() {
        let mut s = MeasureSettings::default();
        s.engine.kind = Engine::Tract;
        s.engine.providers = vec![ExecutionProvider::Tensorrt, ExecutionProvider::Cpu];
        s.protocol.min_time_ms = 12.5;
        s.protocol.burst = 3;
        s.batch = 16;
        s.engine.tensorrt.fp16 = true;
        s.engine.tensorrt.workspace_mib = Some(2048);
        s.engine.placement = true;
        assert_eq!(MeasureSettings::from_query(&s.to_query()), Ok(s.clone()));
        assert!(!s.to_query().contains("trt_int8") && !s.to_query().contains("x64"));
        s.engine.tensorrt.int8 = true;
        s.engine.x64_quant_precision = true;
        assert_eq!(MeasureSettings::from_query(&s.to_query()), Ok(s.clone()));
        assert!(MeasureSettings::from_query("trt_int8=yes")
            .expect_err("bad")
            .contains("'trt_int8'"));
        s.protocol.last_burst = Some(3);
        assert_eq!(MeasureSettings::from_query(&s.to_query()), Ok(s.clone()));
        s.protocol.last_alone = true;
        assert!(s.to_query().ends_with("&last_burst=3&last_alone=true"));
        assert_eq!(MeasureSettings::from_query(&s.to_query()), Ok(s));
        assert!(MeasureSettings::from_query("last_alone=1")
            .expect_err("bad")
            .contains("'last_alone'"));
        assert!(MeasureSettings::from_query("last_burst=0").is_err());
        assert!(MeasureSettings::from_query("runs=x")
            .expect_err("bad")
            .contains("'runs'"));
        assert!(MeasureSettings::from_query("colour=red")
            .expect_err("bad")
            .contains("unknown"));
        assert!(MeasureSettings::from_query("batch=0").is_err());
        // Percent-encoded values (a client may encode the comma) decode before parsing.
        assert_eq!(
            MeasureSettings::from_query("provider=tensorrt%2Ccpu")
                .expect("decodes")
                .engine
                .providers,
            vec![ExecutionProvider::Tensorrt, ExecutionProvider::Cpu]
        );
    }
}
