"""City staff: operators, their API tokens and console sessions, and who may do what."""
