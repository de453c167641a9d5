"""The planted-drift positive control: contaminate Stage I rationales with known harmful text, then
measure how much of it the audit finds and how much the repair removes."""
