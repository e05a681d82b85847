//! QR codes for activation offers and offline challenges.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qrcode::QrCode;
use qrcode::render::svg;

use crate::error::{ApiError, ApiResult};

/// Renders `data` as (SVG text, base64 PNG).
pub fn render(data: &[u8]) -> ApiResult<(String, String)> {
    let code = QrCode::new(data).map_err(ApiError::internal)?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .build();
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(ApiError::internal)?;
    Ok((svg, STANDARD.encode(png)))
}
