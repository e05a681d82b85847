//! Size bounds for every field. Parsers reject anything larger before using it.

/// Whole signed-message envelope (JSON bytes).
pub const MAX_SIGNED_MESSAGE_LEN: usize = 64 * 1024;
/// Decoded payload inside a signed message.
pub const MAX_PAYLOAD_LEN: usize = 44 * 1024;
/// Key id text (base64url of 16 bytes = 22 characters).
pub const MAX_KID_LEN: usize = 22;
/// Account, device and other server-chosen identifiers.
pub const MAX_ID_LEN: usize = 64;
/// Transaction ids and nonces: 16..=32 random bytes.
pub const MIN_RANDOM_ID_BYTES: usize = 16;
/// Upper bound for transaction ids and nonces in bytes.
pub const MAX_RANDOM_ID_BYTES: usize = 32;
/// Activation offer URI, in bytes.
pub const MAX_OFFER_URI_LEN: usize = 1024;
/// Server base URL inside an offer.
pub const MAX_SERVER_URL_LEN: usize = 512;
/// Issuer and user label (display strings).
pub const MAX_LABEL_LEN: usize = 128;
/// Relying-party name in a challenge context.
pub const MAX_RP_NAME_LEN: usize = 64;
/// Coarse location ("Berlin, DE").
pub const MAX_LOCATION_LEN: usize = 64;
/// User agent summary ("Firefox on Linux").
pub const MAX_USER_AGENT_LEN: usize = 256;
/// IP address text.
pub const MAX_IP_LEN: usize = 45;
/// Free display text of a challenge (newlines allowed).
pub const MAX_DISPLAY_TEXT_LEN: usize = 1024;
/// Transaction payee.
pub const MAX_PAYEE_LEN: usize = 128;
/// Transaction amount as a decimal string.
pub const MAX_AMOUNT_LEN: usize = 24;
/// Number matching: digits of a typed or picked number.
pub const MIN_MATCH_DIGITS: usize = 2;
/// Number matching: maximum digits.
pub const MAX_MATCH_DIGITS: usize = 8;
/// Number matching, pick mode: number of choices.
pub const MIN_PICK_CHOICES: usize = 2;
/// Number matching, pick mode: maximum number of choices.
pub const MAX_PICK_CHOICES: usize = 6;
/// Push OTP digits.
pub const MIN_OTP_DIGITS: usize = 6;
/// Push OTP maximum digits.
pub const MAX_OTP_DIGITS: usize = 10;
/// Push token (FCM registration token, APNs device token).
pub const MAX_PUSH_TOKEN_LEN: usize = 4096;
/// UnifiedPush / Web Push endpoint URL.
pub const MAX_PUSH_ENDPOINT_LEN: usize = 2048;
/// Device name chosen by the user.
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// OTP seed bytes (sealed in the activation result).
pub const MIN_SEED_LEN: usize = 16;
/// OTP seed maximum bytes.
pub const MAX_SEED_LEN: usize = 64;
/// HPKE ciphertext of a challenge (plaintext plus 16-byte tag).
pub const MAX_CHALLENGE_CIPHERTEXT_LEN: usize = 16 * 1024;
/// Challenge plaintext JSON.
pub const MAX_CHALLENGE_LEN: usize = MAX_CHALLENGE_CIPHERTEXT_LEN - 16;
/// Challenge header JSON.
pub const MAX_HEADER_LEN: usize = 1024;
/// Longest challenge lifetime, seconds (DESIGN §1: at most 10 minutes).
pub const MAX_CHALLENGE_LIFETIME: u64 = 600;
/// Longest activation offer lifetime, seconds.
pub const MAX_OFFER_LIFETIME: u64 = 600;
/// HTTP method in a signed request.
pub const MAX_METHOD_LEN: usize = 16;
/// Path and query in a signed request.
pub const MAX_PATH_LEN: usize = 2048;
