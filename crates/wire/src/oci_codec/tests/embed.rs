//! OCI's `embedText` through the embeddings batching path (`embed_codec::Api::Oci`): 96 inputs
//! a call, the body in OCI's shape (the compartment is added by the caller), the answer's
//! vectors and `usage.promptTokens`.

use super::check_json;
use crate::embed_codec::{Answer, Api, Embed};

fn embed(n: usize, dimensions: Option<u32>) -> Embed {
    Embed { inputs: (0..n).map(|i| format!("text {i}")).collect(), dimensions, base64: false }
}

#[test]
fn oci_embeddings_are_split_96_a_call_and_written_in_ocis_shape() {
    let api = Api::oci("cohere.embed-multilingual-v3.0");
    assert_eq!(api, Api::Oci { dimensions: 1024 });
    let calls: Vec<_> = api.calls(&embed(200, None)).collect();
    assert_eq!(calls, [0..96, 96..192, 192..200]);
    check_json(
        &api.encode("cohere.embed-multilingual-v3.0", &embed(2, None), 0..2),
        r#"{"servingMode":{"servingType":"ON_DEMAND","modelId":"cohere.embed-multilingual-v3.0"},
            "inputs":["text 0","text 1"],"inputType":"SEARCH_DOCUMENT","truncate":"NONE"}"#,
    );
    let v4 = Api::oci("cohere.embed-v4.0");
    let body = v4.encode("ocid1.generativeaiendpoint.oc1..e", &embed(1, Some(1536)), 0..1);
    assert_eq!(body["servingMode"]["servingType"].as_str(), Some("DEDICATED"));
    assert_eq!(body.get("outputDimensions"), None, "EmbedTextDetails has no field for dimensions");
}

/// `EmbedTextDetails` takes no dimensions: each model answers at its own size, and
/// `dimensions` is taken only when it is that size (a light v3 model's 384, another v3's
/// 1024, v4's 1536), refused by name otherwise.
#[test]
fn oci_embeddings_take_only_the_models_own_dimensions() {
    let dimensions = |model: &str, d: u32| {
        let body = format!(r#"{{"input":"x","dimensions":{d}}}"#);
        Api::oci(model).read(body.as_bytes()).map(|e| e.dimensions).map_err(|r| r.param)
    };
    assert_eq!(Api::oci("cohere.embed-english-light-v3.0"), Api::Oci { dimensions: 384 });
    assert_eq!(Api::oci("cohere.embed-v4.0"), Api::Oci { dimensions: 1536 });
    assert_eq!(dimensions("cohere.embed-english-light-v3.0", 384), Ok(Some(384)));
    assert_eq!(dimensions("cohere.embed-english-light-v3.0", 1024), Err("dimensions".to_owned()));
    assert_eq!(dimensions("cohere.embed-multilingual-v3.0", 1024), Ok(Some(1024)));
    assert_eq!(dimensions("cohere.embed-multilingual-v3.0", 384), Err("dimensions".to_owned()));
    assert_eq!(dimensions("cohere.embed-v4.0", 1536), Ok(Some(1536)));
    assert_eq!(dimensions("cohere.embed-v4.0", 512), Err("dimensions".to_owned()));
}

#[test]
fn oci_embeddings_answers_are_read_with_their_count() {
    let api = Api::oci("cohere.embed-english-v3.0");
    let body = br#"{"id":"a","embeddings":[[0.5,-0.5],[1,0]],"modelId":"cohere.embed-english-v3.0","usage":{"promptTokens":7,"totalTokens":7}}"#;
    assert_eq!(
        api.decode(body, 2, None),
        Ok(Answer { vectors: vec![vec![0.5, -0.5], vec![1.0, 0.0]], tokens: Some(7) })
    );
    assert!(api.decode(body, 3, None).is_err(), "two vectors for three inputs");
    assert!(api.decode(br#"{"embeddings":[["x"]]}"#, 1, None).is_err());
}
