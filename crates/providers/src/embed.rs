//! Embeddings on deployments whose API is not OpenAI's (Bedrock's Titan and Cohere models,
//! the Gemini API, Vertex AI, OCI Generative AI's `embedText`): one OpenAI embeddings request becomes the calls the API allows
//! (`switchyard_wire::embed_codec` says how many inputs each takes and writes and reads them),
//! sent at most [`MAX_CONCURRENT_CALLS`] at a time with the deployment's auth, and their answers
//! merged into one OpenAI embeddings response. Any call that fails fails the attempt with its
//! classified [`AttemptError`], so the gateway fails the whole request over; what the API
//! cannot take is a 400 naming the parameter, and nothing is sent.
//!
//! OpenAI's and Azure OpenAI's embeddings do not come here: their bytes pass through
//! (`Upstream::attempt`).

use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited};
use switchyard_core::AttemptError;
use switchyard_wire::embed_codec::{self, Answer, Api, BEDROCK_INPUT_TOKENS_HEADER};
use tokio::sync::oneshot;

use crate::adapter::Target;
use crate::{Client, Response, Upstream, refusal, send, with_google_token};

/// The most calls of one attempt in flight at once.
pub(crate) const MAX_CONCURRENT_CALLS: usize = 8;

/// The most bytes read from one call's answer.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

impl Upstream {
    /// Whether deployment `index` makes embeddings through [`Upstream::embed`]: its API is not
    /// OpenAI's.
    pub fn embeds_by_calls(&self, index: usize) -> bool {
        self.targets.get(index).is_some_and(|t| t.embed.is_some())
    }

    /// Why deployment `index` cannot take `body` (an OpenAI embeddings request), when its API
    /// is not OpenAI's and cannot; nothing is sent to find out.
    pub fn embeddings_refusal(&self, index: usize, body: &[u8]) -> Option<String> {
        let api = self.targets.get(index)?.embed?;
        api.read(body).err().map(|refusal| refusal.message)
    }

    /// The embeddings `body` (an OpenAI embeddings request) asks for, from deployment `index`:
    /// the merged OpenAI response. `headers` is told when the first call's answer has a
    /// success status (the attempt's first byte); each call waits at most `first_byte` for its
    /// headers.
    pub async fn embed(
        &self,
        index: usize,
        body: Vec<u8>,
        first_byte: Duration,
        headers: oneshot::Sender<()>,
    ) -> Result<Bytes, AttemptError> {
        let target = &self.targets[index];
        let Some(api) = target.embed else {
            let detail = format!("{} deployments serve no embeddings", target.protocol.name());
            return Err(AttemptError::InvalidResponse { detail });
        };
        let embed = api.read(&body).map_err(|refusal| AttemptError::ClientError {
            status: 400,
            message: refusal.message,
            code: Some("unsupported_parameter".into()),
        })?;
        let client = self.client().map_err(|e| AttemptError::ConnectFailed { detail: e.to_string() })?;
        let calls: Vec<Range<usize>> = api.calls(&embed).collect();
        let told = Mutex::new(Some(headers));
        let call = Call { client: &client, target, api, first_byte, told: &told };
        let mut answers = futures_util::stream::iter(calls.iter().cloned())
            .map(|range| {
                let body = target.embed_body(api, &embed, range.clone());
                call.send(body, range.len())
            })
            .buffered(MAX_CONCURRENT_CALLS);
        let mut merged = Vec::with_capacity(calls.len());
        // The first failure ends the attempt; dropping the stream stops the other calls.
        while let Some(answer) = answers.next().await {
            merged.push(answer?);
        }
        Ok(Bytes::from(embed_codec::merge(&target.model, &embed, &calls, merged)))
    }
}

/// What every call of one attempt shares.
#[derive(Clone, Copy)]
struct Call<'a> {
    client: &'a Client,
    target: &'a Target,
    api: Api,
    first_byte: Duration,
    /// Told (once) when a call's answer has a success status.
    told: &'a Mutex<Option<oneshot::Sender<()>>>,
}

impl Call<'_> {
    /// One call of `n` inputs: its answer read, or its failure classified.
    async fn send(self, body: Bytes, n: usize) -> Result<Answer, AttemptError> {
        let response = self.respond(body).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refusal(self.target, response, self.first_byte).await);
        }
        if let Some(tell) = self.told.lock().ok().and_then(|mut told| told.take()) {
            let _ = tell.send(());
        }
        let tokens = response
            .headers()
            .get(BEDROCK_INPUT_TOKENS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = Limited::new(response.into_body(), MAX_ANSWER).collect().await.map_err(|_| {
            AttemptError::InvalidResponse { detail: "an embeddings answer cut off or too large".into() }
        })?;
        self.api.decode(&body.to_bytes(), n, tokens).map_err(|detail| AttemptError::InvalidResponse { detail })
    }

    /// The call's response, whatever its status. A service account's token is fetched first
    /// when there is none, and fetched again once on a 401 (it expired or was revoked).
    async fn respond(&self, body: Bytes) -> Result<Response, AttemptError> {
        let (client, target) = (self.client, self.target);
        match target.tokens() {
            None => {
                let request = target.request(target.embeddings.clone(), body, SystemTime::now)?;
                send(client, request, self.first_byte).await
            }
            Some(tokens) => {
                let build = || Ok((target.request(target.embeddings.clone(), body.clone(), SystemTime::now)?, ()));
                Ok(with_google_token(client, tokens, self.first_byte, build).await?.0)
            }
        }
    }
}
