"""Understanding a customer's message: the sentence encoder and what reads its vectors."""
