//! The response body: a whole buffer, or chunks forwarded from a channel
//! as they come (streaming, with no buffering in between).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub enum GwBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
    /// A whole body counted against the gateway's buffer budget until it
    /// is sent (the permit goes with it).
    Held(Option<Bytes>, tokio::sync::OwnedSemaphorePermit),
}

impl GwBody {
    pub fn full(b: impl Into<Bytes>) -> GwBody {
        GwBody::Full(Some(b.into()))
    }
}

impl Body for GwBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            GwBody::Full(b) | GwBody::Held(b, _) => {
                Poll::Ready(b.take().map(|b| Ok(Frame::data(b))))
            }
            GwBody::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, GwBody::Full(None) | GwBody::Held(None, _))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GwBody::Full(Some(b)) | GwBody::Held(Some(b), _) => {
                SizeHint::with_exact(b.len() as u64)
            }
            GwBody::Full(None) | GwBody::Held(None, _) => SizeHint::with_exact(0),
            GwBody::Channel(_) => SizeHint::default(),
        }
    }
}
