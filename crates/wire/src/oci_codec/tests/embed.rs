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
    assert_eq!(api, Api::Oci { v4: false });
    let calls: Vec<_> = api.calls(&embed(200, None)).collect();
    assert_eq!(calls, [0..96, 96..192, 192..200]);
    check_json(
        &api.encode("cohere.embed-multilingual-v3.0", &embed(2, None), 0..2),
        r#"{"servingMode":{"servingType":"ON_DEMAND","modelId":"cohere.embed-multilingual-v3.0"},
            "inputs":["text 0","text 1"],"inputType":"SEARCH_DOCUMENT","truncate":"NONE"}"#,
    );
    let v4 = Api::oci("cohere.embed-v4.0");
    let body = v4.encode("ocid1.generativeaiendpoint.oc1..e", &embed(1, Some(512)), 0..1);
    assert_eq!(
        (body["servingMode"]["servingType"].as_str(), body["outputDimensions"].as_u64()),
        (Some("DEDICATED"), Some(512))
    );
    assert_eq!(v4.read(br#"{"input":"x","dimensions":512}"#).map(|e| e.dimensions), Ok(Some(512)));
    assert_eq!(api.read(br#"{"input":"x","dimensions":512}"#).map_err(|r| r.param), Err("dimensions".to_owned()));
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
