"""Column names every layer shares: the transaction and award keys, and the columns the reader adds."""

KEY = "contract_transaction_unique_key"  # one contract action (USAspending's unique key)
AWARD_KEY = "contract_award_unique_key"  # the award the action belongs to
ROW = "source_row"  # data row number in its file: 1 is the first row after the header
OVERFLOW = "__overflow__"  # catches the fields of a row that has more than the header
