//! The embeddings codec: which API a model is, how requests split into calls, each API's
//! bodies both ways, refusals naming the parameter, and the merge (order, usage, base64).

use serde_json::{Value, json};

use super::*;

fn embed(n: usize) -> Embed {
    Embed { inputs: (0..n).map(|i| format!("text {i}")).collect(), dimensions: None, base64: false }
}

#[test]
fn models_choose_their_api() {
    assert_eq!(Api::google("https://generativelanguage.googleapis.com/v1beta", "text-embedding-004"), Api::Gemini);
    let vertex = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google";
    assert_eq!(Api::google(vertex, "text-embedding-005"), Api::Vertex { one_per_call: false });
    assert_eq!(Api::google(vertex, "gemini-embedding-001"), Api::Vertex { one_per_call: true });
}

#[test]
fn inputs_split_into_the_calls_each_api_allows() {
    let sizes = |api: Api, n: usize| api.calls(&embed(n)).map(|r| r.len()).collect::<Vec<_>>();
    assert_eq!(sizes(Api::TitanV2, 3), [1, 1, 1]);
    assert_eq!(sizes(Api::Cohere { v4: false }, 200), [96, 96, 8]);
    assert_eq!(sizes(Api::Cohere { v4: false }, 96), [96]);
    assert_eq!(sizes(Api::Gemini, 150), [100, 50]);
    assert_eq!(sizes(Api::Vertex { one_per_call: false }, 251), [250, 1]);
    let ranges: Vec<_> = Api::Gemini.calls(&embed(201)).collect();
    assert_eq!(ranges, [0..100, 100..200, 200..201], "in order, covering every input once");
}

/// 250 inputs of 200 tokens each are 50,000 tokens: Vertex AI takes 20,000 a call, so they go
/// in calls of at most 80 (16,000 by the estimate, a fifth of margin).
#[test]
fn vertex_calls_are_packed_under_its_token_limit_too() {
    let long = |n: usize| Embed {
        inputs: (0..n).map(|i| format!("{i:>4} {}", "word ".repeat(159))).collect(),
        dimensions: None,
        base64: false,
    };
    let e = long(250);
    assert!(e.inputs.iter().all(|t| estimate_tokens(t) == 200));
    let vertex = Api::Vertex { one_per_call: false };
    let calls: Vec<_> = vertex.calls(&e).collect();
    assert_eq!(calls, [0..80, 80..160, 160..240, 240..250]);
    for call in &calls {
        let tokens: u64 = e.inputs[call.clone()].iter().map(|t| u64::from(estimate_tokens(t))).sum();
        assert!(tokens <= VERTEX_MAX_TOKENS * 4 / 5, "{call:?}: {tokens}");
    }
    // Short inputs still go 250 a call; an input alone over the limit is a call of its own.
    assert_eq!(vertex.calls(&embed(500)).map(|r| r.len()).collect::<Vec<_>>(), [250, 250]);
    let mut huge = embed(3);
    huge.inputs[1] = "x".repeat(100_000);
    assert_eq!(vertex.calls(&huge).collect::<Vec<_>>(), [0..1, 1..2, 2..3]);
    // Other APIs split by count only.
    assert_eq!(Api::Gemini.calls(&long(250)).map(|r| r.len()).collect::<Vec<_>>(), [100, 100, 50]);
}

/// OpenAI's limit of 2048 inputs a request, and Google's of 3072 dimensions, are held to
/// before any call is made.
#[test]
fn too_many_inputs_or_dimensions_are_refused_by_name() {
    let many = |n: usize| json!({"model": "m", "input": vec!["x"; n]}).to_string();
    let refused = Api::Gemini.read(many(2049).as_bytes()).expect_err("over OpenAI's limit");
    assert_eq!(refused.param, "input");
    assert!(refused.message.contains("2048"), "{refused}");
    assert_eq!(Api::TitanV2.read(many(2049).as_bytes()).map_err(|r| r.param), Err("input".to_owned()));
    assert_eq!(Api::Gemini.read(many(2048).as_bytes()).map(|e| e.inputs.len()), Ok(2048));
    for api in [Api::Gemini, Api::Vertex { one_per_call: false }, Api::Vertex { one_per_call: true }] {
        let huge = api.read(br#"{"input": "x", "dimensions": 4000000000}"#).expect_err("too many dimensions");
        assert_eq!(huge.param, "dimensions");
        assert_eq!(
            api.read(br#"{"input": "x", "dimensions": 3073}"#).map_err(|r| r.param),
            Err("dimensions".to_owned())
        );
        assert_eq!(api.read(br#"{"input": "x", "dimensions": 3072}"#).map(|e| e.dimensions), Ok(Some(3072)));
    }
}

#[test]
fn requests_are_read_and_what_cannot_be_sent_is_refused_by_name() {
    let read = |api: Api, body: Value| api.read(body.to_string().as_bytes());
    let ok = read(
        Api::Gemini,
        json!({"model": "m", "input": ["a", "b"], "dimensions": 64, "encoding_format": "base64", "user": "u-1"}),
    );
    assert_eq!(ok, Ok(Embed { inputs: vec!["a".into(), "b".into()], dimensions: Some(64), base64: true }));
    let one = read(Api::TitanV2, json!({"model": "m", "input": "just one", "encoding_format": "float"}));
    assert_eq!(one.map(|e| e.inputs), Ok(vec!["just one".to_owned()]));

    let param = |api: Api, body: Value| read(api, body).expect_err("refused").param;
    assert_eq!(param(Api::TitanV2, json!({"model": "m", "input": [1, 2, 3]})), "input");
    assert_eq!(param(Api::Gemini, json!({"model": "m", "input": [[1, 2], [3]]})), "input");
    assert_eq!(param(Api::Gemini, json!({"model": "m", "input": []})), "input");
    assert_eq!(param(Api::Gemini, json!({"model": "m"})), "input");
    assert_eq!(param(Api::TitanV2, json!({"model": "m", "input": "x", "dimensions": 300})), "dimensions");
    assert_eq!(param(Api::Cohere { v4: false }, json!({"model": "m", "input": "x", "dimensions": 512})), "dimensions");
    assert_eq!(param(Api::Gemini, json!({"model": "m", "input": "x", "dimensions": 0})), "dimensions");
    assert_eq!(param(Api::Gemini, json!({"model": "m", "input": "x", "encoding_format": "int8"})), "encoding_format");
    assert_eq!(param(Api::Gemini, json!({"model": "m", "input": "x", "input_type": "query"})), "input_type");
    let refusal = read(Api::TitanV1, json!({"model": "m", "input": [[1]]})).expect_err("refused");
    assert!(refusal.message.contains("Amazon Titan Text Embeddings G1"), "{refusal}");
    assert!(read(Api::Cohere { v4: true }, json!({"model": "m", "input": "x", "dimensions": 512})).is_ok());
}

#[test]
fn each_api_is_written_in_its_own_shape() {
    let mut e = embed(3);
    e.dimensions = Some(256);
    assert_eq!(
        Api::TitanV2.encode("amazon.titan-embed-text-v2:0", &e, 1..2),
        json!({"inputText": "text 1", "normalize": true, "dimensions": 256})
    );
    assert_eq!(Api::TitanV1.encode("amazon.titan-embed-text-v1", &embed(1), 0..1), json!({"inputText": "text 0"}));
    let cohere = Api::Cohere { v4: false }.encode("cohere.embed-english-v3", &embed(3), 0..3);
    assert_eq!(
        cohere,
        json!({"texts": ["text 0", "text 1", "text 2"], "input_type": "search_document", "embedding_types": ["float"]})
    );
    assert_eq!(Api::Cohere { v4: true }.encode("cohere.embed-v4:0", &e, 0..1)["output_dimension"], 256);
    assert_eq!(
        Api::Gemini.encode("text-embedding-004", &e, 1..3),
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "text 1"}]}, "outputDimensionality": 256},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "text 2"}]}, "outputDimensionality": 256},
        ]})
    );
    assert_eq!(
        Api::Vertex { one_per_call: false }.encode("text-embedding-005", &e, 0..2),
        json!({"instances": [{"content": "text 0"}, {"content": "text 1"}], "parameters": {"outputDimensionality": 256}})
    );
}

#[test]
fn each_api_is_read_back_with_its_count() {
    let titan =
        json!({"embedding": [0.5, -0.25], "inputTextTokenCount": 7, "embeddingsByType": {"float": [0.5, -0.25]}});
    let answer = Api::TitanV2.decode(titan.to_string().as_bytes(), 1, None).expect("reads");
    assert_eq!(answer, Answer { vectors: vec![vec![0.5, -0.25]], tokens: Some(7) });

    let by_type = json!({"id": "x", "embeddings": {"float": [[0.5], [1.0]]}, "response_type": "embeddings_by_type"});
    let answer = Api::Cohere { v4: false }.decode(by_type.to_string().as_bytes(), 2, Some(9)).expect("reads");
    assert_eq!(answer, Answer { vectors: vec![vec![0.5], vec![1.0]], tokens: Some(9) });
    let floats = json!({"id": "x", "embeddings": [[0.5], [1.0]], "response_type": "embeddings_floats"});
    let answer = Api::Cohere { v4: false }.decode(floats.to_string().as_bytes(), 2, None).expect("reads");
    assert_eq!(answer.vectors, [[0.5], [1.0]]);
    assert_eq!(answer.tokens, None);

    let gemini = json!({"embeddings": [{"values": [0.25]}, {"values": [0.75]}]});
    let answer = Api::Gemini.decode(gemini.to_string().as_bytes(), 2, None).expect("reads");
    assert_eq!(answer, Answer { vectors: vec![vec![0.25], vec![0.75]], tokens: None });

    let vertex = json!({"predictions": [
        {"embeddings": {"values": [0.25], "statistics": {"token_count": 3, "truncated": false}}},
        {"embeddings": {"values": [0.75], "statistics": {"token_count": 4, "truncated": false}}},
    ]});
    let answer = Api::Vertex { one_per_call: false }.decode(vertex.to_string().as_bytes(), 2, None).expect("reads");
    assert_eq!(answer, Answer { vectors: vec![vec![0.25], vec![0.75]], tokens: Some(7) });

    // Fewer vectors than inputs, values that are not numbers, or no JSON: not an answer.
    assert!(Api::Gemini.decode(gemini.to_string().as_bytes(), 3, None).is_err());
    assert!(Api::TitanV2.decode(br#"{"embedding": ["x"]}"#, 1, None).is_err());
    assert!(Api::TitanV2.decode(b"<html>", 1, None).is_err());
    assert!(Api::Cohere { v4: false }.decode(br#"{"embeddings": {"int8": [[1]]}}"#, 1, None).is_err());
}

#[test]
fn answers_merge_in_input_order_with_usage_summed() {
    let e = embed(5);
    let calls: Vec<_> = Api::Cohere { v4: false }.calls(&e).collect();
    assert_eq!(calls.len(), 1);
    // Three calls of two, two and one inputs (as a two-per-call API would make them).
    let calls = [0..2, 2..4, 4..5];
    let answers = vec![
        Answer { vectors: vec![vec![0.0], vec![1.0]], tokens: Some(10) },
        Answer { vectors: vec![vec![2.0], vec![3.0]], tokens: None },
        Answer { vectors: vec![vec![4.0]], tokens: Some(5) },
    ];
    let out: Value = serde_json::from_slice(&merge("the-model", &e, &calls, answers)).expect("JSON");
    assert_eq!((out["object"].as_str(), out["model"].as_str()), (Some("list"), Some("the-model")));
    let data = out["data"].as_array().expect("data");
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["embedding"], json!([i as f64]));
    }
    // "text 2" and "text 3" are estimated: 2 tokens each.
    assert_eq!(out["usage"], json!({"prompt_tokens": 19, "total_tokens": 19}));
}

#[test]
fn base64_is_written_when_asked_for() {
    assert_eq!(base64_of(&[]), "");
    assert_eq!(base64_of(&[1.0]), "AACAPw==");
    assert_eq!(base64_of(&[1.0, -2.0]), "AACAPwAAAMA=");
    let mut e = embed(1);
    e.base64 = true;
    let answers = vec![Answer { vectors: vec![vec![1.0, -2.0]], tokens: Some(1) }];
    let out: Value =
        serde_json::from_slice(&merge("m", &e, &Api::TitanV2.calls(&e).collect::<Vec<_>>(), answers)).expect("JSON");
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMA=");
}

#[test]
fn floats_are_written_short() {
    let e = embed(1);
    let answers = vec![Answer { vectors: vec![vec![0.1, -0.2]], tokens: Some(1) }];
    let text = String::from_utf8(merge("m", &e, &Api::TitanV2.calls(&e).collect::<Vec<_>>(), answers)).expect("UTF-8");
    assert!(text.contains("[0.1,-0.2]"), "{text}");
}
