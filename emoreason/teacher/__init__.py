"""emoreason.teacher"""
