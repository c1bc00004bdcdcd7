"""Second opinions: the other open safety models a policy configures, asked about each new case
after intake (policies/second_opinion/ has the adapters, policies.SecondOpinionSetting the
configuration); one stored SecondOpinion per case and model."""
