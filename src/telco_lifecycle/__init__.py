"""Data lifecycle of a Danish B2B telecom, run by Airflow as its privacy policy promises."""
