from django.shortcuts import render


def dashboard(request):
    return render(request, "reviewer/dashboard.html", {})
