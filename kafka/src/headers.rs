//! Reading a consumed message's headers whatever bytes their names hold.
//!
//! Kafka stores a header name as bytes and any producer may write one that is not UTF-8.
//! rdkafka's `Headers::get`/`iter` unwrap the name's UTF-8 conversion and panic on such a
//! record, so every reader of headers in Ferry goes through [`message_headers`] instead: it
//! reads the names as bytes through librdkafka and decodes them as Kafka's Java client does
//! (`new String(bytes, UTF_8)`: each invalid sequence becomes U+FFFD), so a predicate, the
//! header converter and the dead letter queue see the name Kafka Connect would see.

use std::ffi::CStr;
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaRespErr;

/// A header as read from Kafka: its name and its value's bytes (`None`: a null value).
pub type RawHeader = (String, Option<Vec<u8>>);

/// The name of the header whose bytes in Kafka are `bytes`, as Kafka's Java client reads
/// it: each invalid UTF-8 sequence becomes U+FFFD.
pub fn decode_name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The headers of `message`, in order; empty when it has none.
pub fn message_headers(message: &BorrowedMessage<'_>) -> Vec<RawHeader> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = ptr::null_mut();
    // SAFETY: `message.ptr()` is the live librdkafka message `message` borrows. The headers
    // librdkafka hands back belong to that message and live as long as it does; we only
    // read them, and copy out what we keep before `message` can be dropped.
    let err = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        // RD_KAFKA_RESP_ERR__NOENT: the message has no headers.
        return Vec::new();
    }
    // SAFETY: `headers` is the non-null header list of the live message (above).
    let count = unsafe { rdsys::rd_kafka_header_cnt(headers) };
    let mut out = Vec::with_capacity(count);
    for idx in 0..count {
        let mut name: *const std::os::raw::c_char = ptr::null();
        let mut value: *const std::os::raw::c_void = ptr::null();
        let mut size: usize = 0;
        // SAFETY: `idx < count`; librdkafka writes a pointer to the header's NUL-terminated
        // name and to its value of `size` bytes (null for a null value), both owned by the
        // header list, which outlives this loop.
        let err = unsafe {
            rdsys::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size)
        };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: `name` is a NUL-terminated string owned by the header list (above).
        let name = decode_name(unsafe { CStr::from_ptr(name) }.to_bytes());
        let value = (!value.is_null()).then(|| {
            // SAFETY: a non-null `value` points at `size` readable bytes (above).
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        });
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_is_decoded_as_the_java_client_decodes_it() {
        assert_eq!(decode_name(b"tr\xffce"), "tr\u{fffd}ce");
        assert_eq!(decode_name("prix-€".as_bytes()), "prix-€");
    }
}
