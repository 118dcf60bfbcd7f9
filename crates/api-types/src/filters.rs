//! The `filters` query parameter, in both shapes clients send it.
//!
//! The docker CLI sends `{"status":{"running":true}}`; docker-py sends
//! `{"status":["running"]}`. Both become a map from filter name to values.

use std::collections::BTreeMap;

/// Parsed filters: name → accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

/// Why a `filters` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiltersError(pub String);

impl std::fmt::Display for FiltersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FiltersError {}

impl Filters {
    /// Parses the JSON text of a `filters` parameter; an empty string means no filters.
    pub fn parse(text: &str) -> Result<Self, FiltersError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FiltersError(format!("invalid filter: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| FiltersError("invalid filter: expected a JSON object".into()))?;
        let mut out = BTreeMap::new();
        for (name, v) in obj {
            let values: Vec<String> = match v {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => Ok(s.clone()),
                        other => Ok(other.to_string()),
                    })
                    .collect::<Result<_, FiltersError>>()?,
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => {
                    return Err(FiltersError(format!(
                        "invalid filter: value of {name:?} must be a list or an object"
                    )))
                }
            };
            out.insert(name.clone(), values);
        }
        Ok(Self(out))
    }

    /// The values given for `name`, empty when the filter is absent.
    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether no filter was given at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes the filters in the CLI's shape (`{"name":{"value":true}}`).
    pub fn to_json(&self) -> String {
        let obj: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, vs)| {
                let inner: serde_json::Map<String, serde_json::Value> = vs
                    .iter()
                    .map(|v| (v.clone(), serde_json::Value::Bool(true)))
                    .collect();
                (k.clone(), serde_json::Value::Object(inner))
            })
            .collect();
        serde_json::Value::Object(obj).to_string()
    }

    /// Adds one `name=value` filter as given on a command line (`--filter status=running`).
    pub fn add_arg(&mut self, arg: &str) -> Result<(), FiltersError> {
        let (k, v) = arg.split_once('=').ok_or_else(|| {
            FiltersError(format!("bad format of filter (expected name=value): {arg}"))
        })?;
        self.0.entry(k.to_string()).or_default().push(v.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse_to_the_same_filters() {
        let cli = Filters::parse(r#"{"label":{"ck=1":true},"status":{"running":true}}"#).unwrap();
        let py = Filters::parse(r#"{"label":["ck=1"],"status":["running"]}"#).unwrap();
        assert_eq!(cli, py);
        assert_eq!(cli.get("status"), ["running"]);
        assert!(cli.get("name").is_empty());
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert!(Filters::parse("{not json").is_err());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse("").unwrap().is_empty());
    }

    #[test]
    fn round_trips_through_the_cli_shape() {
        let mut f = Filters::default();
        f.add_arg("name=web").unwrap();
        assert_eq!(Filters::parse(&f.to_json()).unwrap(), f);
        assert!(f.add_arg("novalue").is_err());
    }
}
