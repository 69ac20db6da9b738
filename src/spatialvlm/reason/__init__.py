"""reason"""
