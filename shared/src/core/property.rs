//! The ESP contact properties sparkbridge writes. Each ESP client maps them to the names
//! configured for that ESP (`ESP_PROPERTY_NAMES` renames them, an empty name turns one off).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// One contact property, by its logical name (the key `ESP_PROPERTY_NAMES` uses).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Property {
    /// The referral status: pending, verified, rejected.
    Status,
    /// Where the referral came from (`sparkloop-magic`, `sparkloop-upscribe`).
    Source,
    SparkloopId,
    Partner,
    Campaign,
    ReferralCode,
    ReferralLink,
    /// The referrer's referral count.
    Referrals,
    Reward,
    RewardRedeemed,
    Coupon,
}

impl Property {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The property's name in the ESP unless renamed: `sparkloop` + the name in camel case.
    pub fn default_esp_name(self) -> &'static str {
        match self {
            Property::Status => "sparkloopStatus",
            Property::Source => "sparkloopSource",
            Property::SparkloopId => "sparkloopId",
            Property::Partner => "sparkloopPartner",
            Property::Campaign => "sparkloopCampaign",
            Property::ReferralCode => "sparkloopReferralCode",
            Property::ReferralLink => "sparkloopReferralLink",
            Property::Referrals => "sparkloopReferrals",
            Property::Reward => "sparkloopReward",
            Property::RewardRedeemed => "sparkloopRewardRedeemed",
            Property::Coupon => "sparkloopCoupon",
        }
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The properties of one ESP call, in a stable order.
pub type Properties = BTreeMap<Property, Value>;

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn logical_names_are_snake_case_and_parse_back() {
        for p in Property::iter() {
            assert_eq!(p.as_str().parse::<Property>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Property::SparkloopId.as_str(), "sparkloop_id");
        assert_eq!(Property::RewardRedeemed.as_str(), "reward_redeemed");
        assert!("sparkloopId".parse::<Property>().is_err());
    }

    #[test]
    fn default_esp_names_are_distinct() {
        let mut names: Vec<_> = Property::iter().map(Property::default_esp_name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Property::VARIANTS.len());
    }
}
