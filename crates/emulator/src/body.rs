//! A response body fed from a channel, so a task can pace SSE frames with real timing and
//! cut the connection by sending an error.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

pub(crate) type BodyItem = Result<Bytes, std::io::Error>;

pub(crate) enum EmuBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<BodyItem>),
}

impl EmuBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> EmuBody {
        EmuBody::Full(Some(bytes.into()))
    }

    pub(crate) fn channel() -> (mpsc::Sender<BodyItem>, EmuBody) {
        let (tx, rx) = mpsc::channel(64);
        (tx, EmuBody::Channel(rx))
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            EmuBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            EmuBody::Channel(rx) => rx.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data))),
        }
    }
}
