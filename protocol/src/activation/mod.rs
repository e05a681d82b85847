//! Activation: the server's one-time offer (URI for QR / deep link, or a typed
//! code), the device's signed request and the server's signed result.
//!
//! * [`ServerUrl`] and [`ServerKeyPin`]: which server, and how its key is trusted.
//! * [`OfferId`], [`OfferSecret`], [`OfferCredentials`]: the offer and its typed code.
//! * [`ActivationOffer`]: the offer URI.
//! * [`ActivationRequest`]: the device's keys, the offer proof and push settings.
//! * [`ActivationResult`]: the server's grant and the sealed OTP seed.

mod code;
pub(crate) mod offer;
mod request;
mod result;
mod server;

pub use code::{OfferCredentials, OfferId, OfferSecret};
pub use offer::ActivationOffer;
pub use request::{ActivationRequest, DeviceInfo, Platform, PushRegistration};
pub use result::{ActivationGrant, ActivationResult, OtpAlgorithm, OtpParams, VerificationPolicy};
pub use server::{ServerKeyPin, ServerUrl};

/// HMAC label for the offer-secret proof.
pub const OFFER_PROOF_LABEL: &str = "countersign/v1/offer-proof";
/// HPKE `info` for the OTP seed sealed in the activation result.
pub const SEED_HPKE_INFO: &str = "countersign/v1/activation-seed";
/// URI prefix of an activation offer.
pub const OFFER_URI_PREFIX: &str = "countersign://activate?";

/// Length of an offer id in bytes (8 Crockford base32 characters).
pub const OFFER_ID_LEN: usize = 5;
/// Length of an offer secret in bytes (16 Crockford base32 characters, 80 bits).
pub const OFFER_SECRET_LEN: usize = 10;
/// Characters in a typed activation code, without separators (id, secret, check).
pub const CODE_CHARS: usize = 25;
