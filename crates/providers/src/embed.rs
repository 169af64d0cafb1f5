//! Embeddings on deployments whose API is not OpenAI's (Bedrock's Titan and Cohere models,
//! the Gemini API, Vertex AI, OCI Generative AI's `embedText`): one OpenAI embeddings request becomes the calls the API allows
//! (`switchyard_wire::embed_codec` says how many inputs each takes and writes and reads them),
//! sent at most [`MAX_CONCURRENT_CALLS`] at a time with the deployment's auth, and their answers
//! merged into one OpenAI embeddings response. Each answer is read up to [`MAX_ANSWER`]
//! (16 MiB: 250 vectors of 3072 dimensions are a few MB of JSON), so one attempt holds at most
//! 128 MiB of answers in flight. A call that fails with a 429 (whose Retry-After, if any, is
//! short: at most [`MAX_RETRY_WAIT`], and ends within the call's first-byte budget) or a 500,
//! 502, 503 or 504 is made once more; a call that fails (again) fails the attempt with its
//! classified [`AttemptError`], so the gateway fails the whole request over. What the API
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
use tokio::time::Instant;

use crate::adapter::{Target, unsupported};
use crate::{Client, Response, Upstream, refusal, send, with_google_token};

/// The most calls of one attempt in flight at once.
pub(crate) const MAX_CONCURRENT_CALLS: usize = 8;

/// The most bytes read from one call's answer.
pub(crate) const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The longest Retry-After a failed call is made again after, within the attempt.
pub(crate) const MAX_RETRY_WAIT: Duration = Duration::from_secs(1);

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
        let embed = api.read(&body).map_err(|refusal| unsupported(refusal.message))?;
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
    /// One call of `n` inputs, made once more when it failed in a way that a second try may
    /// not ([`retry_wait`]).
    async fn send(self, body: Bytes, n: usize) -> Result<Answer, AttemptError> {
        let started = Instant::now();
        match self.once(body.clone(), n).await {
            Err(error) => match retry_wait(&error, self.first_byte.saturating_sub(started.elapsed())) {
                Some(wait) => {
                    tokio::time::sleep(wait).await;
                    self.once(body, n).await
                }
                None => Err(error),
            },
            answered => answered,
        }
    }

    /// One call of `n` inputs: its answer read, or its failure classified.
    async fn once(self, body: Bytes, n: usize) -> Result<Answer, AttemptError> {
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

/// How long to wait before making a failed call again, if it is to be: after a 429 its
/// Retry-After (none: at once) when at most [`MAX_RETRY_WAIT`] and shorter than `left` (what
/// is left of the call's first-byte budget); after a 500, 502, 503 or 504 at once.
pub(crate) fn retry_wait(error: &AttemptError, left: Duration) -> Option<Duration> {
    match *error {
        AttemptError::RateLimited { retry_after } => {
            let wait = retry_after.unwrap_or(Duration::ZERO);
            (wait <= MAX_RETRY_WAIT && wait < left).then_some(wait)
        }
        AttemptError::ServerError { status: 500 | 502 | 503 | 504 } => Some(Duration::ZERO),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_short_429_or_a_5xx_is_tried_again() {
        let left = Duration::from_secs(3);
        let limited = |after: Option<u64>| AttemptError::RateLimited { retry_after: after.map(Duration::from_millis) };
        assert_eq!(retry_wait(&limited(None), left), Some(Duration::ZERO));
        assert_eq!(retry_wait(&limited(Some(400)), left), Some(Duration::from_millis(400)));
        assert_eq!(retry_wait(&limited(Some(1500)), left), None, "longer than a short wait");
        assert_eq!(retry_wait(&limited(Some(400)), Duration::from_millis(300)), None, "past the budget");
        for status in [500, 502, 503, 504] {
            assert_eq!(retry_wait(&AttemptError::ServerError { status }, left), Some(Duration::ZERO));
        }
        assert_eq!(retry_wait(&AttemptError::ServerError { status: 501 }, left), None);
        assert_eq!(retry_wait(&AttemptError::FirstByteTimeout, left), None);
        assert_eq!(retry_wait(&AttemptError::UpstreamRefused { status: 403 }, left), None);
        let refused = AttemptError::ClientError { status: 400, message: "no".into(), code: None };
        assert_eq!(retry_wait(&refused, left), None);
    }
}
