//! The protobuf codec of the plugin protocols: prost's, with one change.
//! A message that does not decode (malformed bytes, Structs nested past
//! prost's recursion limit) is the caller's mistake: `INVALID_ARGUMENT`
//! with CloudForet's `ERROR_INVALID_ARGUMENT: ...` details, not tonic's
//! `INTERNAL`. Named in `build.rs` (`codec_path`) for the plugin protocols'
//! generated services. Tested through a server (tests/tests/hardening.rs):
//! tonic's decode buffer cannot be built outside tonic.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, DecodeBuf};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

/// [`ProstCodec`] with decode errors as `INVALID_ARGUMENT`.
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as tonic::codec::Codec>::Encoder;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(self.0.decoder(), PhantomData)
    }
}

/// [`ProstDecoder`] with its errors as `INVALID_ARGUMENT`.
pub struct Decoder<U>(ProstDecoder<U>, PhantomData<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            let name = std::any::type_name::<U>().rsplit("::").next().unwrap_or("message");
            Status::invalid_argument(format!("ERROR_INVALID_ARGUMENT: the message is not a valid {name}: {}", s.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
