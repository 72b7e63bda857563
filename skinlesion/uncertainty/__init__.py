"""When not to answer: conformal prediction sets, referral, and the decision rules shipped with a model."""
