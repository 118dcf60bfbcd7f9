//! Docker's "StrSlice": a JSON value that is either a string or an array of strings.

use serde::{Deserialize, Deserializer};

/// Deserializes `null`, `"a b"` or `["a","b"]` into `Option<Vec<String>>`.
///
/// A plain string is taken as one element, as dockerd does for `Entrypoint` and `Cmd`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}
